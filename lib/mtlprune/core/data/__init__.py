"""Data: the dataset axis of the multi-task runs (`datasets`), the real releases' on-disk formats and the offline
generators that write exactly those formats (NYU-v2 rooms, Tiny-Taskonomy buildings, the Visual Decathlon layout), and
loading with per-process caching."""
