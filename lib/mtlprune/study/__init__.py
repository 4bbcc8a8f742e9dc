"""Layer 3 — the experiments and their evidence: profiles, the study design (seeds, levels, budgets, core methods,
causes, ablations, paper keys), the grids each chapter needs, statistics (no trainer), evidence and the Findings
verdicts. Imports only `core` and `runs`."""
