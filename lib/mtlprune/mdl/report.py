"""What the multi-domain notebook calls: the grid of runs, tidy tables of accuracy and costs, the Decathlon S-score,
filter usage and overlap between domains, and glued numbers for the prose.

S-score (Rebuffi et al. 2017; baselines.md §3.5): S = Σ_d α_d · max(0, E_d^max − E_d)², E_d^max = 2 × the baseline's
error on domain d, α_d = 1000 / (E_d^max)². The baseline is the `individual` networks (mean error over their seeds),
so they score 250 per domain, a perfect domain scores 1000, and the maximum is 1000 × the number of domains.
"""

from __future__ import annotations

from typing import Any, Iterable

import pandas as pd

from .. import catalogue, paths, store
from ..execute import run_pairs
from ..grids import check_seeds, default_seeds
from ..results import load_history
from .config import MDLConfig
from .profiles import make_mdl_config
from .runner import SUMMARY_KEYS


def label(cfg: MDLConfig) -> str:
    """The catalogue's label, with the sharing term of a method that has one."""
    m = cfg.method
    base = catalogue.mdl_method(m.name).label
    if m.sharing == "none":
        return base
    return f"{base} ({m.sharing}{', learnable' if m.learnable_weight else ''})"


def switched(cfg: MDLConfig) -> bool:
    """Whether the method trades accuracy against a budget (a line over budgets) or not (a horizontal line)."""
    return catalogue.mdl_method(cfg.method.name).family == "switches"


def _summary(cfg: MDLConfig, seed: int) -> dict[str, Any]:
    return store.cached(cfg.run_id, seed, SUMMARY_KEYS)


def grid(profile: str, budgets: Iterable[float], sharings: Iterable[str], seeds: list[int] | None = None,
         extra_seeds: list[int] | None = None, seed_budget: float = 0.5,
         overrides: dict[str, Any] | None = None) -> list[tuple[MDLConfig, int]]:
    """The study's runs: the two budget-free baselines at every seed, BA² and ours (each sharing variant) at every
    budget for `seeds`, plus `extra_seeds` at `seed_budget`. Everything is validated before anything runs."""
    budgets = [float(b) for b in budgets]
    if not budgets or any(not 0 < b <= 1 for b in budgets):
        raise ValueError(f"budgets must be a non-empty list of numbers in (0, 1], got {budgets!r}")
    seeds = check_seeds(list(seeds) if seeds is not None else default_seeds(profile, "main"))
    extra = list(extra_seeds) if extra_seeds is not None else default_seeds(profile, "extra")
    extra = [s for s in check_seeds(extra) if s not in seeds] if extra else []
    if extra and seed_budget not in budgets:
        raise ValueError(f"seed_budget {seed_budget} must be one of budgets {budgets}")
    out = []
    for method in ("individual", "frozen"):
        cfg = make_mdl_config(profile, method, 1.0, overrides=overrides)
        out += [(cfg, s) for s in seeds + extra]
    for method, shs in (("ba2", ["none"]), ("budget_aware", list(sharings))):
        for sh in shs:
            for b in budgets:
                cfg = make_mdl_config(profile, method, b, sh, overrides=overrides)
                out += [(cfg, s) for s in seeds + (extra if b == seed_budget else [])]
    return out


def run_grid(pairs: list[tuple[MDLConfig, int]], progress: bool = True, profile: str | None = None,
             executor: str | None = None) -> pd.DataFrame:
    """The grid through the one grid runner (`execute.run_pairs`), on `executor`."""
    return run_pairs(pairs, profile=profile, progress=progress, executor=executor)


def results(pairs: list[tuple[MDLConfig, int]]) -> pd.DataFrame:
    """One row per (run, seed): accuracy per domain, mean, S-score, costs, union / intersection / Jaccard."""
    rows = []
    for cfg, seed in pairs:
        s = _summary(cfg, seed)
        rows.append({"run_id": cfg.run_id, "method": label(cfg), "switched": switched(cfg),
                     "budget": cfg.method.budget, "seed": seed,
                     **{f"acc {d}": a for d, a in s["accuracy"].items()}, "mean accuracy": s["mean_accuracy"],
                     "params ratio": s["params_ratio"], "MACs ratio": s["macs_ratio"],
                     "latency ratio": s["latency_ratio"],
                     "latency IQR": s["latency_ratio_iqr"][1] - s["latency_ratio_iqr"][0],
                     "latency q1": s["latency_ratio_iqr"][0], "latency q3": s["latency_ratio_iqr"][1],
                     "bytes ratio": s["bytes_ratio"],
                     "union": s.get("union"), "intersection": s.get("intersection"), "jaccard": s.get("jaccard")})
    df = pd.DataFrame(rows)
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


def _pm(values: pd.Series, digits: int) -> str:
    """Mean ± 95 % interval half-width over seeds, as the tables print it (the mean alone below two seeds)."""
    from ..evidence import half_width

    h = half_width(values)
    return f"{values.mean():.{digits}f}" + (f" ± {h:.{digits}f}" if pd.notna(h) else "")


def summary_table(df: pd.DataFrame) -> pd.DataFrame:
    """One row per method and budget, 8 columns: seeds, mean accuracy and S-score (mean ± 95 % interval over seeds),
    parameters and MACs (× one single-domain backbone, mean), and latency (median ratio, with the median interquartile
    range of the paired repeats). The per-domain accuracies are in the figure."""
    rows = []
    for (method, budget), g in df.groupby(["method", "budget"]):
        rows.append({"method": method, "budget": budget, "seeds": g["seed"].nunique(),
                     "mean accuracy (%)": _pm(g["mean accuracy"], 1), "S-score": _pm(g["S-score"], 0),
                     "params ×": round(float(g["params ratio"].mean()), 2),
                     "MACs ×": round(float(g["MACs ratio"].mean()), 2),
                     "latency × (IQR)": f"{g['latency ratio'].median():.2f} ({g['latency IQR'].median():.2f})"})
    return pd.DataFrame(rows)


def filter_usage(cfg: MDLConfig, seed: int) -> pd.DataFrame:
    """Long table: block, filter, domain, used (0/1) of a switched run."""
    s = _summary(cfg, seed)
    rows = [{"block": b, "filter": f, "domain": d, "used": u}
            for b, doms in s.get("filter_usage", {}).items() for d, us in doms.items() for f, u in enumerate(us)]
    return pd.DataFrame(rows)


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


def glue_headline(df: pd.DataFrame, budget: float, method: str) -> None:
    """Glue the numbers the resolve note and the prose quote: at `budget`, `method`'s mean accuracy (± 95 % interval)
    against the individual networks', and its params, MACs and latency ratios (latency: the median ratio and the
    median interquartile range over seeds)."""
    from ..evidence import half_width
    from ..glue import glue_value

    ours = df[(df["method"] == method) & (df["budget"] == budget)]
    ind = df[df["method"] == catalogue.mdl_method("individual").label]
    if ours.empty:
        raise ValueError(f"no runs of {method!r} at budget {budget}")
    glue_value("mdl_budget_pct", f"{budget:.0%}")
    glue_value("mdl_method", method)
    for name, frame in (("ours", ours), ("ind", ind)):
        glue_value(f"mdl_{name}_acc", float(frame["mean accuracy"].mean()))
        glue_value(f"mdl_{name}_acc_sd", half_width(frame["mean accuracy"]))
        glue_value(f"mdl_{name}_s", float(frame["S-score"].mean()))
    for col, key in (("params ratio", "params"), ("MACs ratio", "macs"), ("latency ratio", "latency"),
                     ("latency IQR", "latency_iqr"), ("union", "union")):
        glue_value(f"mdl_ours_{key}", float(ours[col].mean()))
    glue_value("mdl_ind_params", float(ind["params ratio"].mean()))


def glue_sharing(df: pd.DataFrame, budget: float, method: str) -> pd.DataFrame:
    """What the sharing term buys at `budget`: `method` (with sharing) against BA² (the same switches and budget,
    no sharing term). Glues the union of the domains' filter sets, the parameters deployed, the MACs and the mean
    accuracy (± 95 % interval) of both, and the accuracy verdict (`evidence.verdict`: a tie unless the intervals
    separate); returns the two rows."""
    from ..evidence import interval, verdict
    from ..glue import VERDICT_WORDS, glue_value

    ba2 = catalogue.mdl_method("ba2").label
    rows, iv = [], {}
    for key, name in (("share", method), ("noshare", ba2)):
        frame = df[(df["method"] == name) & (df["budget"] == budget)]
        if frame.empty:
            raise ValueError(f"no runs of {name!r} at budget {budget}: the sharing reading needs both")
        iv[key] = interval(frame["mean accuracy"])
        row = {"method": name, "seeds": len(frame),
               "mean accuracy (%)": _pm(frame["mean accuracy"], 1),
               "union": round(float(frame["union"].mean()), 2),
               "params ×": round(float(frame["params ratio"].mean()), 2),
               "MACs ×": round(float(frame["MACs ratio"].mean()), 2)}
        rows.append(row)
        for col, short in (("union", "union"), ("params ratio", "params"), ("MACs ratio", "macs")):
            glue_value(f"mdl_{key}_{short}", float(frame[col].mean()))
        glue_value(f"mdl_{key}_acc", iv[key]["mean"])
        glue_value(f"mdl_{key}_acc_ci", iv[key]["ci"])
    glue_value("mdl_sharing_verdict", VERDICT_WORDS[verdict(iv["share"], iv["noshare"])])
    return pd.DataFrame(rows)


def detail_config(profile: str, budget: float, sharing: str, overrides: dict[str, Any] | None = None) -> MDLConfig:
    return make_mdl_config(profile, "budget_aware" if sharing != "none" else "ba2", budget, sharing,
                           overrides=overrides)


def histories(pairs: list[tuple[MDLConfig, int]]) -> pd.DataFrame:
    frames = []
    for cfg, seed in pairs:
        frames.append(load_history(cfg.run_id, seed).assign(method=label(cfg), budget=cfg.method.budget, seed=seed))
    return pd.concat(frames, ignore_index=True)


def card():
    """The methods' and sharing terms' own documentation, as Markdown for the chapter."""
    import inspect

    from IPython.display import Markdown

    from . import methods, model, sharing

    docs = [inspect.getdoc(m) or "" for m in (methods, sharing, model)]
    return Markdown("\n\n".join(docs))


def plateau_table(pairs: list[tuple[MDLConfig, int]]) -> pd.DataFrame:
    """The plateau criterion (`evidence.series_plateau`, relative change of the mean validation accuracy over the last
    quarter < 1 %) for the source network and, per seed, the individual networks (mean over their domains)."""
    from ..evidence import PLATEAU_TOLERANCE, series_plateau

    rows = []
    ind = [(c, s) for c, s in pairs if c.method.name == "individual"]
    if ind:
        src = ind[0][0].source
        hist = pd.DataFrame(store.read_history(paths.seed_dir(src.run_id, src.seed)))
        p = series_plateau(hist["step"], hist["val/0"])
        rows.append({"network": "source (pretraining)", "seed": src.seed, "iterations": int(p["steps"]),
                     "gain (%)": round(p["gain"], 2), "holds": p["holds"]})
    for cfg, seed in ind:
        hist = pd.DataFrame(store.read_history(paths.seed_dir(cfg.run_id, seed)))
        mean = hist[hist["split"] == "val"].groupby("step")["val/0"].mean()  # one domain per network: its head 0
        p = series_plateau(mean.index, mean.values)
        rows.append({"network": "individual networks (mean over domains)", "seed": seed,
                     "iterations": int(p["steps"]), "gain (%)": round(p["gain"], 2), "holds": p["holds"]})
    out = pd.DataFrame(rows)
    if len(out):
        out[f"plateau (|gain| < {PLATEAU_TOLERANCE:g} %)"] = out.pop("holds").map({True: "yes", False: "NO"})
    return out
