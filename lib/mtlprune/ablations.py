"""The AdapMTL ablations of the study, by group: each group is a set of labelled variants (method key, method
parameters, loss weighting) that differ from AdapMTL's default in one respect. The first variant of every group is the
default itself, so each table compares against the same (cached) runs.

Notebooks pick a group by name (`study.ablation_pairs(profile, group, ...)`); the sensitivity grid of the faithful
mechanism is separate (`study.sensitivity_pairs`), because its axes are numeric.
"""

from __future__ import annotations

from typing import Any

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


def group(name: str) -> dict[str, dict[str, Any]]:
    if name not in ABLATIONS:
        raise ValueError(f"unknown ablation group {name!r}; valid: {', '.join(ABLATIONS)}")
    return ABLATIONS[name]
