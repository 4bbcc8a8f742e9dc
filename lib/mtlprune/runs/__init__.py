"""Layer 2 — running and storing runs: the run store (cache, lock, failure record, atomic summary), the kinds of run
(multi-task, multi-domain, source) in one table, the grid runner and its executors, results bundles, and the loaders
that turn runs into DataFrames. Imports only `core`."""
