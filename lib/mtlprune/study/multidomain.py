"""Multi-domain evidence: the runs' results with the Decathlon S-score, the overlap of the domains' filter sets, and
the plateau of the source and the individual networks.

S-score (Rebuffi et al. 2017; baselines.md §3.5): S = Σ_d α_d · max(0, E_d^max − E_d)², E_d^max = 2 × the baseline's
error on domain d, α_d = 1000 / (E_d^max)². The baseline is the `individual` networks (mean error over their seeds),
so they score 250 per domain, a perfect domain scores 1000, and the maximum is 1000 × the number of domains.
"""

from __future__ import annotations

import pandas as pd

from ..core import catalogue
from ..core.config import MDLConfig
from ..core.identity import run_id
from ..runs.results import load_history, mdl_results
from .stats import PLATEAU_TOLERANCE, series_plateau


def results(pairs: list[tuple[MDLConfig, int]]) -> pd.DataFrame:
    """One row per (run, seed) (`runs.results.mdl_results`) with its S-score against the individual networks."""
    df = mdl_results(pairs)
    return df.assign(**{"S-score": s_scores(df)})


def s_scores(df: pd.DataFrame) -> pd.Series:
    acc_cols = [c for c in df.columns if c.startswith("acc ")]
    base = df[df["method"] == catalogue.mdl_method("individual").label][acc_cols].mean()
    if base.isna().any():
        raise ValueError("the S-score needs the individual networks' runs in the same table")
    e_max = 2 * (100 - base)
    alpha = 1000 / e_max.clip(lower=1e-9) ** 2
    err = 100 - df[acc_cols]
    return ((e_max - err).clip(lower=0) ** 2 * alpha).sum(axis=1)


def overlap(usage: pd.DataFrame) -> pd.DataFrame:
    """Jaccard overlap of the filter sets of every pair of domains (all switched blocks together)."""
    wide = usage.pivot_table(index=["block", "filter"], columns="domain", values="used")
    doms = list(wide.columns)
    mat = pd.DataFrame(index=doms, columns=doms, dtype=float)
    for a in doms:
        for b in doms:
            inter = float((wide[a] * wide[b]).sum())
            union = float(((wide[a] + wide[b]) > 0).sum())
            mat.loc[a, b] = inter / union if union else float("nan")
    return mat


def plateau_table(pairs: list[tuple[MDLConfig, int]]) -> pd.DataFrame:
    """The plateau criterion (`evidence.series_plateau`, relative change of the mean validation accuracy over the last
    quarter < 1 %) for the source network and, per seed, the individual networks (mean over their domains)."""
    rows = []
    ind = [(c, s) for c, s in pairs if c.method.name == "individual"]
    if ind:
        src = ind[0][0].source
        hist = load_history(run_id(src), src.seed)
        p = series_plateau(hist["step"], hist["val/0"])
        rows.append({"network": "source (pretraining)", "seed": src.seed, "iterations": int(p["steps"]),
                     "gain (%)": round(p["gain"], 2), "holds": p["holds"]})
    for cfg, seed in ind:
        hist = load_history(run_id(cfg), seed)
        mean = hist[hist["split"] == "val"].groupby("step")["val/0"].mean()  # one domain per network: its head 0
        p = series_plateau(mean.index, mean.values)
        rows.append({"network": "individual networks (mean over domains)", "seed": seed,
                     "iterations": int(p["steps"]), "gain (%)": round(p["gain"], 2), "holds": p["holds"]})
    out = pd.DataFrame(rows)
    if len(out):
        out[f"plateau (|gain| < {PLATEAU_TOLERANCE:g} %)"] = out.pop("holds").map({True: "yes", False: "NO"})
    return out
