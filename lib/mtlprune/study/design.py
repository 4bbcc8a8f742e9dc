"""The study's design, in one module: which seeds, sparsity levels, sparse-phase lengths and multi-domain budgets
each profile measures, the core methods the evidence rests on, the variants that test the causes behind AdapMTL's
result, the AdapMTL ablations, and the paper's baselines and table rows. Everything here is data; the grids built from
it are `grids`, the config values of each profile `profiles`.
"""

from __future__ import annotations

from typing import Any

# Seeds of the study per profile: (seeds at every sparsity, extra seeds at the seed sparsity 0.9). Every cell the
# book reports has >= 3 seeds, except smoke's (CI checks the code paths, not the numbers).
SEEDS = {"smoke": ([0, 1], []), "quick": ([0, 1, 2], []), "standard": ([0, 1, 2], []), "full": ([0, 1, 2], [])}
SEED_SPARSITY = 0.9  # the sparsity of the paper's main comparison

# The sparsity levels of the standard profile's sparsity grid (plotted against achieved sparsity).
LEVELS = {"smoke": (0.9,), "quick": (0.9,), "standard": (0.5, 0.8, 0.9, 0.95, 0.98),
          "full": (0.5, 0.8, 0.9, 0.95, 0.98)}

# The sparse-phase lengths the budget chapter measures around the profile's B (`profiles.SPARSE_PHASE`): quick B and
# 2B, the doubling test at B (what its time on 2 cores holds; B/2 = 400, measured earlier on quick's problem,
# moved AdapMTL by 8 points and the baselines by 5-36 to B, and standard measures it again); standard B/4 to 8B:
# measured on quick's problem, SNIP, IMP and DiSparse still gain 8-15 Δ_T points from 1,600 to 3,200 (AdapMTL, LTH
# and the control no longer move), so 6,400 is where the standard chapter can look for their B.
BUDGETS = {"smoke": (2, 4, 8), "quick": (800, 1600), "standard": (200, 400, 800, 1600, 3200, 6400),
           "full": (5000, 10000, 20000, 40000)}

# The methods the evidence rests on: AdapMTL, the paper's baselines (SNIP, LTH, IMP, DiSparse dynamic, the paper's
# DiSparse row) and the two closest generic ones (global magnitude, STR). The budget chapter measures every method a
# profile compares (with the control): B must hold for each. quick compares AdapMTL with the paper's four baselines
# only (what its time on 2 cores holds); standard adds the generic ones; smoke two, the code paths.
CORE_METHODS = ("adapmtl", "snip", "lth", "imp", "disparse_dynamic", "magnitude_global", "str")
BUDGET_METHODS = {"smoke": ("adapmtl", "magnitude_global"),
                  "quick": ("adapmtl", "snip", "lth", "imp", "disparse_dynamic"), "standard": CORE_METHODS,
                  "full": CORE_METHODS}

# The claims of the Findings page (`findings.read`) each profile reads: quick keeps AdapMTL against the paper's
# baselines on NYU-v2, where AdapMTL puts its zeros (the same runs) and the multi-domain claim; the adaptive-weighting
# claim (its variants and tuned static weights) and the second dataset are read by standard.
CLAIMS = ("baselines", "backbone", "weighting", "second", "mdl")  # every claim, in page order
FINDINGS_CLAIMS = {"smoke": CLAIMS, "quick": ("baselines", "backbone", "mdl"), "standard": CLAIMS, "full": CLAIMS}

# The paper's baselines in its main comparison (AdapMTL Table 1), and the paper's row names -> our registry keys (the
# paper's "w/o adaptive thresholds" is one threshold for the net)
PAPER_BASELINES = ("snip", "lth", "imp", "disparse_dynamic")
PAPER_KEYS = {"snip": "snip", "lth": "lth", "imp": "imp", "disparse (dynamic)": "disparse_dynamic",
              "adapmtl w/o adaptive thresholds": "adapmtl_global_threshold", "adapmtl": "adapmtl"}

# The variants that each remove one of AdapMTL's ingredients (adaptive weighting, per-component thresholds), the
# hard-mask control at its learned allocation, and the static task weights tuned on validation
CAUSES: dict[str, dict[str, Any]] = {
    "AdapMTL (per component, adaptive weighting)": {"method": "adapmtl"},
    "AdapMTL, equal weighting": {"method": "adapmtl", "weighting": "equal"},
    "AdapMTL, one global threshold": {"method": "adapmtl_global_threshold"},
    "AdapMTL, one threshold per layer": {"method": "adapmtl_layer_thresholds"},
}
HARD_MASK = "hard masks at AdapMTL's allocation"
TUNED = "AdapMTL, static weights tuned on validation"

# The multi-domain budgets each profile measures (share of the switchable weights a domain may use), and the sharing
# terms of the budget-aware method
MDL_BUDGETS = {"smoke": (0.5,), "quick": (0.5,), "standard": (1.0, 0.75, 0.5, 0.25), "full": (1.0, 0.75, 0.5, 0.25)}
MDL_SHARINGS = ("union", "intersection", "jaccard")

# The AdapMTL ablations, by group: each group is a set of labelled variants (method key, method parameters, loss
# weighting) that differ from AdapMTL's default in one respect. The first variant of every group is the default
# itself, so each table compares against the same (cached) runs. The sensitivity grid of the faithful mechanism is
# separate (`grids.sensitivity_pairs`): its axes are numeric.
DEFAULT = "AdapMTL (per component, adaptive, controlled, from dense)"

ABLATIONS: dict[str, dict[str, dict[str, Any]]] = {
    "granularity": {
        DEFAULT: {"method": "adapmtl"},
        "one global threshold": {"method": "adapmtl_global_threshold"},
        "one threshold per layer": {"method": "adapmtl_layer_thresholds"},
    },
    "weighting": {
        DEFAULT: {"method": "adapmtl"},
        "equal weighting": {"method": "adapmtl", "weighting": "equal"},
        "uncertainty weighting (Kendall et al.)": {"method": "adapmtl", "weighting": "uncertainty"},
        "DWA weighting (Liu et al.)": {"method": "adapmtl", "weighting": "dwa"},
    },
    "mechanism": {
        DEFAULT: {"method": "adapmtl"},
        "faithful mechanism (init −15, coupled weight decay, freeze at target)": {
            "method": "adapmtl", "params": {"mechanism": "faithful"}},
    },
    "start": {
        DEFAULT: {"method": "adapmtl"},
        "from scratch": {"method": "adapmtl", "params": {"start": "scratch"}},
    },
}

TITLES = {"granularity": "Threshold granularity", "weighting": "Loss weighting", "mechanism": "Reaching the target",
          "start": "Start from the dense reference or from scratch"}
