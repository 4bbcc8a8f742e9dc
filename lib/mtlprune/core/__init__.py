"""Layer 1 — computation: configs and run identity, tasks (their losses, meters, constant predictors), data, models,
pruning strategies, loss weightings, the multi-domain model and methods, the one training loop, sparsity, validation.

Imports nothing of `runs`, `study` or `render`; importing this package imports nothing at all.
"""
