"""Evidence: per-run records with Δ against the dense reference *and* the equal-training control, intervals over seeds,
verdicts that call a tie a tie, runs collapsed to chance, the dense plateau criterion and the sparse-phase budget
chosen by measurement.

Conventions (stated in the book, `conventions.md`):
- Interval: mean ± the 95 % Student-t half-width over seeds (n − 1 degrees of freedom); n < 2 has no interval.
- A difference is called only where the two intervals do not overlap; otherwise the verdict is `tie`.
- Δ_T (AdapMTL's: per task the sum of signed relative changes in %, mean over tasks) of a pruned run against the dense
  reference of its seed (`delta_t`) and against `dense_finetune`, the reference trained on for the same sparse phase
  (`delta_t_control`): the first credits pruned runs with their extra training, the second measures pruning alone.
- Collapse: a run whose primary metric of some task (mIoU, depth abs. error, mean normal angle) is no better than a
  constant predictor's on the same test split (`chance_metrics`) is flagged and left out of every ranking.
- Plateau: Δp (LibMTL's mean relative change, %) between the validation metrics averaged over the last `window` of
  training and over the `window` ending at three quarters (for one accuracy series: its relative change); the run is
  at a plateau when its absolute value is below `PLATEAU_TOLERANCE` (1 %).
- Budget: the smallest sparse-phase length b whose method ranking (mean Δ_T) does not change at 2b beyond the
  intervals: no pair of methods separated at b or at 2b swaps order, and no method collapsed at either. Kendall τ
  between the two rankings is shown too.
"""

from __future__ import annotations

import itertools
import json
import math
from dataclasses import replace
from typing import Any, Iterable

import numpy as np
import pandas as pd
from scipy import stats as sps

from . import catalogue, store
from .config import PruningConfig, RunConfig, to_dict
from .metrics import METRICS, TaskMeters, delta_p, delta_t
from .runner import SUMMARY_KEYS
from .tasks import primary, task_spec

LEVEL = 0.95
PLATEAU_TOLERANCE = 1.0  # % change over the last quarter of training
PRIMARY = primary()  # every task's headline metric (its spec's; signs: METRICS)


def half_width(values: Iterable[float], level: float = LEVEL) -> float:
    """The Student-t half-width of the mean's `level` interval (NaN below two values)."""
    x = np.asarray([v for v in values if v is not None and np.isfinite(v)], dtype=float)
    if x.size < 2:
        return float("nan")
    return float(sps.t.ppf(0.5 + level / 2, x.size - 1) * x.std(ddof=1) / math.sqrt(x.size))


def interval(values: Iterable[float], level: float = LEVEL) -> dict[str, float]:
    x = [float(v) for v in values if v is not None and np.isfinite(v)]
    mean = float(np.mean(x)) if x else float("nan")
    h = half_width(x, level)
    return {"mean": mean, "ci": h, "lo": mean - h, "hi": mean + h, "n": len(x)}


def verdict(a: dict[str, float], b: dict[str, float], higher_is_better: bool = True) -> str:
    """`better` / `worse` when the intervals of a and b do not overlap (from a's side), else `tie`. Without an
    interval (n < 2) nothing is called: `tie`."""
    if not (np.isfinite(a["ci"]) and np.isfinite(b["ci"])):
        return "tie"
    if a["lo"] > b["hi"]:
        return "better" if higher_is_better else "worse"
    if a["hi"] < b["lo"]:
        return "worse" if higher_is_better else "better"
    return "tie"


def control_config(cfg: RunConfig) -> RunConfig:
    """The equal-training control of a pruned run: its dense reference trained on for the same sparse phase (every
    train/data setting of the run), without pruning and with the reference's own loss weighting."""
    from .validate import validate

    if cfg.dense is None:
        raise ValueError(f"{cfg.run_id} is a dense reference: it has no sparse phase to match")
    out = replace(cfg, pruning=PruningConfig(method="dense_finetune", sparsity=0.0), weighting=cfg.dense.weighting)
    validate(out)
    return out


def with_controls(pairs: Iterable[tuple[RunConfig, int]]) -> list[tuple[RunConfig, int]]:
    """`pairs` plus the control of every pruned (config, seed), each once."""
    pairs = list(pairs)
    out = {(c.run_id, s): (c, s) for c, s in pairs}
    for cfg, seed in pairs:
        if cfg.dense is not None and cfg.pruning.method != "dense_finetune":
            ctl = control_config(cfg)
            out.setdefault((ctl.run_id, seed), (ctl, seed))
    return list(out.values())


_CHANCE: dict[str, dict[str, dict[str, float]]] = {}


def chance_metrics(cfg: RunConfig) -> dict[str, dict[str, float]]:
    """Test metrics of constant predictors fitted on the training split (each task spec's: the majority class, the
    mean valid depth, the mean normal direction). A run no better than these on a task has collapsed. Computed once
    per dataset (every config of a study shares it)."""
    from .data.loading import load_data

    key = json.dumps([to_dict(cfg.data), list(cfg.tasks)], sort_keys=True, default=str)
    if key in _CHANCE:
        return _CHANCE[key]
    train, test = load_data(cfg, "train", False), load_data(cfg, "test", False)
    constants = {t: task_spec(t).constant(train) for t in cfg.tasks}  # each task's constant predictor
    meters = TaskMeters(cfg.tasks)
    for i in range(0, test["image"].shape[0], 64):
        batch = {k: v[i:i + 64] for k, v in test.items()}
        b, _, h, w = batch["image"].shape
        meters.update({t: predict(b, h, w) for t, predict in constants.items()}, batch)
    _CHANCE[key] = meters.compute()
    return _CHANCE[key]


def collapsed_tasks(metrics: dict[str, dict[str, float]], chance: dict[str, dict[str, float]]) -> list[str]:
    out = []
    for task, metric in PRIMARY.items():
        sign = dict(METRICS[task])[metric]
        if task in metrics and task in chance:
            if sign * (metrics[task][metric] - chance[task][metric]) <= 0:
                out.append(task)
    return out


def records(pairs: Iterable[tuple[RunConfig, int] | tuple[str, RunConfig, int]]) -> pd.DataFrame:
    """One row per completed (config, seed), or (label, config, seed) for labelled variants: method, label, requested
    and achieved sparsity, sparse-phase length, Δ_T against the dense reference and (when its control ran) against the
    control, per-task Δ_T, component sparsities, primary metrics and the collapse flag."""
    rows = []
    for item in pairs:
        given, cfg, seed = item if len(item) == 3 else (None, *item)
        if not store.is_complete(cfg.run_id, seed):
            continue
        s = store.cached(cfg.run_id, seed, SUMMARY_KEYS)
        row: dict[str, Any] = {
            "run_id": cfg.run_id, "method": cfg.kind, "label": given or catalogue.label(cfg.kind),
            "weighting": cfg.weighting.name, "sparsity_requested": cfg.pruning.sparsity,
            "sparsity": s["sparsity"]["overall"], "budget": cfg.train.iterations if cfg.dense is not None else 0,
            "seed": seed, "delta_t": s["delta_t"]["mean"],
            **{f"delta_t {t}": s["delta_t"].get(t) for t in METRICS},
            **{f"sparsity {c}": v for c, v in s["sparsity"]["components"].items()},
            **{f"{t}/{m}": s["metrics"][t][m] for t, m in PRIMARY.items() if t in s["metrics"]},
        }
        row["delta_t_control"] = float("nan")
        if cfg.dense is not None and cfg.pruning.method != "dense_finetune":
            ctl = control_config(cfg)
            if store.is_complete(ctl.run_id, seed):
                c = store.cached(ctl.run_id, seed, SUMMARY_KEYS)
                row["delta_t_control"] = delta_t(s["metrics"], c["metrics"])["mean"]
        bad = collapsed_tasks(s["metrics"], chance_metrics(cfg))
        row["collapsed"] = ", ".join(bad)
        rows.append(row)
    return pd.DataFrame(rows)


def summarize(df: pd.DataFrame, by: list[str], values: Iterable[str] = ("delta_t", "delta_t_control")) -> pd.DataFrame:
    """Mean, interval half-width and n of each value per group; `collapsed` = seeds flagged as collapsed."""
    out = []
    for key, g in df.groupby(by, sort=False):
        key = key if isinstance(key, tuple) else (key,)
        row = dict(zip(by, key))
        for v in values:
            iv = interval(g[v])
            row.update({v: iv["mean"], f"{v} ci": iv["ci"], f"{v} lo": iv["lo"], f"{v} hi": iv["hi"]})
        row["n"] = len(g)
        row["collapsed"] = int((g["collapsed"] != "").sum()) if "collapsed" in g else 0
        out.append(row)
    return pd.DataFrame(out)


def _iv(row: pd.Series, value: str) -> dict[str, float]:
    return {"mean": row[value], "ci": row[f"{value} ci"], "lo": row[f"{value} lo"], "hi": row[f"{value} hi"]}


def ranking_change(summary: pd.DataFrame, a: Any, b: Any, value: str = "delta_t_control",
                   key: str = "budget") -> dict[str, Any]:
    """How the method ranking by mean `value` moves from `key` = a to `key` = b (e.g. budgets b and 2b): Kendall τ of
    the two rankings, the pairs that swap order while their intervals separate at a or at b (a real change), and the
    pairs tied at both. Collapsed methods are left out."""
    sa = summary[(summary[key] == a) & (summary["collapsed"] == 0)].set_index("method")
    sb = summary[(summary[key] == b) & (summary["collapsed"] == 0)].set_index("method")
    methods = [m for m in sa.index if m in sb.index]
    tau = float(sps.kendalltau(sa.loc[methods, value], sb.loc[methods, value]).statistic) if len(methods) > 1 \
        else float("nan")
    swaps, ties = [], []
    for m, n in itertools.combinations(methods, 2):
        before = np.sign(sa.loc[m, value] - sa.loc[n, value])
        after = np.sign(sb.loc[m, value] - sb.loc[n, value])
        sep_a = verdict(_iv(sa.loc[m], value), _iv(sa.loc[n], value)) != "tie"
        sep_b = verdict(_iv(sb.loc[m], value), _iv(sb.loc[n], value)) != "tie"
        if before != after and (sep_a or sep_b):
            swaps.append(f"{catalogue.label(m)} / {catalogue.label(n)}")
        if not sep_a and not sep_b:
            ties.append(f"{catalogue.label(m)} / {catalogue.label(n)}")
    everyone = set(summary.loc[summary[key].isin([a, b]), "method"])
    return {"from": a, "to": b, "methods": len(methods), "complete": len(methods) == len(everyone) >= 2,
            "kendall_tau": tau, "swaps": swaps, "ties": ties}


def budget_stability(summary: pd.DataFrame, value: str = "delta_t_control") -> pd.DataFrame:
    """`ranking_change` between every budget and the next (each the double of the last in the study's grids)."""
    budgets = sorted(summary["budget"].unique())
    rows = [ranking_change(summary, a, b, value) for a, b in zip(budgets, budgets[1:])]
    return pd.DataFrame(rows)


def choose_budget(stability: pd.DataFrame) -> int | None:
    """The smallest budget whose ranking no longer changes beyond the intervals at the next one, with every method
    ranked at both (none collapsed: a length at which methods collapse to chance is too short by definition; None: no
    length qualifies)."""
    stable = stability[(stability["swaps"].map(len) == 0) & stability["complete"]]
    return int(stable["from"].min()) if len(stable) else None


def _window_means(frame: pd.DataFrame, columns: list[str], window: float) -> tuple[pd.Series, pd.Series]:
    """The mean of `columns` over the `window` (fraction of training) ending at 3/4 of it and over the last one (the
    nearest earlier point when a window holds none)."""
    frame = frame.sort_values("step")
    if frame.empty:
        raise ValueError("the run logged no validation metrics: no plateau can be measured")
    end = float(frame["step"].max())
    w = max(window * end, 1.0)

    def upto(t: float) -> pd.Series:
        part = frame[(frame["step"] > t - w) & (frame["step"] <= t)]
        return (part if len(part) else frame[frame["step"] <= t].tail(1))[columns].mean()

    return upto(0.75 * end), upto(end)


def plateau(history: pd.DataFrame, tasks: Iterable[str], window: float = 0.1) -> dict[str, float]:
    """Δp (%) between the validation metrics averaged over the last `window` of training and over the `window`
    ending at 3/4 of it; `holds` when below `PLATEAU_TOLERANCE` in absolute value."""
    val = history[history["split"] == "val"]
    cols = {t: [f"{t}/{m}" for m, _ in METRICS[t]] for t in tasks}
    before, last = _window_means(val, [c for cs in cols.values() for c in cs], window)
    as_metrics = lambda v: {t: {c.split("/")[1]: float(v[c]) for c in cs} for t, cs in cols.items()}  # noqa: E731
    gain = delta_p(as_metrics(last), as_metrics(before))["mean"]
    return {"gain": gain, "tolerance": PLATEAU_TOLERANCE, "holds": abs(gain) < PLATEAU_TOLERANCE,
            "steps": float(val["step"].max())}


def _fmt(mean: float, ci: float) -> str:
    if not np.isfinite(mean):
        return "–"
    return f"{mean:+.1f} ± {ci:.1f}" if np.isfinite(ci) else f"{mean:+.1f}"


def comparison_table(rec: pd.DataFrame, ours: str | None = "AdapMTL", by: str = "label",
                     value: str = "delta_t_control") -> pd.DataFrame:
    """The leaderboard of one comparison (≤ 8 columns): per row (a method or labelled variant) the mean Δ_T ± 95 %
    interval against the control and the dense reference, achieved sparsity, seeds, collapsed seeds, the rank by
    `value` among the rows that did not collapse (rows whose interval overlaps the first row of a rank share it), and,
    unless `ours` is None, the verdict of `ours` against the row."""
    summ = summarize(rec, [by, "method"], ("delta_t", "delta_t_control", "sparsity"))
    summ = summ.sort_values(value, ascending=False).reset_index(drop=True)
    ranked = summ[summ["collapsed"] == 0]
    ranks, head, rank = {}, None, 0
    for i, (_, r) in enumerate(ranked.iterrows(), 1):
        if head is None or verdict(_iv(r, value), _iv(head, value)) != "tie":
            rank, head = i, r  # a new rank opens where the intervals separate from the rank's first row
        ranks[r[by]] = rank
    ref = summ[summ[by] == ours]
    out = pd.DataFrame({
        "rank": [ranks.get(k, "–") for k in summ[by]],
        by: summ[by],
        "Δ_T vs control": [_fmt(m, c) for m, c in zip(summ["delta_t_control"], summ["delta_t_control ci"])],
        "Δ_T vs dense": [_fmt(m, c) for m, c in zip(summ["delta_t"], summ["delta_t ci"])],
        "sparsity %": (100 * summ["sparsity"]).round(1),
        "seeds": summ["n"],
        "collapsed": summ["collapsed"],
    })
    if ours is not None:
        out[f"{ours} is"] = ["–" if k == ours or ref.empty else verdict(_iv(ref.iloc[0], value), _iv(r, value))
                             for k, (_, r) in zip(summ[by], summ.iterrows())]
    out.attrs.update({"summary": summ, "ours": ours, "by": by, "value": value})
    return out


def stability_table(stability: pd.DataFrame) -> pd.DataFrame:
    """`budget_stability` for the page: one row per doubling, lists in words."""
    return pd.DataFrame({
        "length → double": [f"{a} → {b}" for a, b in zip(stability["from"], stability["to"])],
        "methods ranked": stability["methods"],
        "none collapsed": stability["complete"].map({True: "yes", False: "no"}),
        "Kendall τ": stability["kendall_tau"].round(2),
        "swaps (intervals separated)": [", ".join(s) or "none" for s in stability["swaps"]],
        "tied at both": [len(t) for t in stability["ties"]],
    })


def plateau_table(cfg: RunConfig, seeds: Iterable[int]) -> pd.DataFrame:
    """The plateau criterion of a dense run per seed: iterations, Δp of the last quarter (%), and whether it holds."""
    from .results import load_history

    rows = []
    for s in seeds:
        p = plateau(load_history(cfg.run_id, s), cfg.tasks)
        rows.append({"seed": s, "iterations": int(p["steps"]), "Δp over the last quarter (%)": round(p["gain"], 2),
                     f"plateau (|Δp| < {PLATEAU_TOLERANCE:g} %)": "yes" if p["holds"] else "NO"})
    return pd.DataFrame(rows)


def series_plateau(steps: Iterable[float], values: Iterable[float], window: float = 0.1) -> dict[str, Any]:
    """`plateau` for one higher-is-better series (e.g. a mean validation accuracy): its relative change (%) between
    the mean over the last `window` of training and over the `window` ending at 3/4 of it."""
    frame = pd.DataFrame({"step": list(steps), "value": list(values)}, dtype=float)
    before, last = _window_means(frame, ["value"], window)
    a, b = float(before["value"]), float(last["value"])
    gain = 100.0 * (b - a) / abs(a) if a else float("inf")
    return {"gain": gain, "tolerance": PLATEAU_TOLERANCE, "holds": abs(gain) < PLATEAU_TOLERANCE,
            "steps": float(frame["step"].max())}


def precision_twin(cfg: RunConfig, precision: str = "float32") -> RunConfig:
    """The same run computed in another `train.precision`: the control that measures what bf16 autocast changes."""
    return replace(cfg, train=replace(cfg.train, precision=precision))


def precision_table(cfg: RunConfig, twin: RunConfig, seeds: Iterable[int]) -> pd.DataFrame:
    """Test metrics of `cfg` against its `precision_twin`, seed by seed: each precision's mean, the paired difference
    (cfg − twin) with its 95 % interval, and `tie` when that interval holds 0 (else `higher` / `lower`)."""
    from .results import load_summaries

    df = load_summaries([cfg.run_id, twin.run_id])
    df = df[(df["split"] == "test") & df["seed"].isin(list(seeds))]
    a_name, b_name = cfg.train.precision, twin.train.precision
    rows = []
    for task, ms in METRICS.items():
        for metric, sign in ms:
            sel = df[(df["task"] == task) & (df["metric"] == metric)]
            a = sel[sel["run_id"] == cfg.run_id].set_index("seed")["value"]
            b = sel[sel["run_id"] == twin.run_id].set_index("seed")["value"]
            common = sorted(set(a.index) & set(b.index))
            if not common:
                continue
            d = interval(a[common] - b[common])
            tied = not np.isfinite(d["ci"]) or d["lo"] <= 0 <= d["hi"]
            rows.append({"task": task, "metric": metric, "better": "↑" if sign > 0 else "↓",
                         a_name: float(a[common].mean()), b_name: float(b[common].mean()),
                         f"{a_name} − {b_name}": d["mean"], "± 95 %": d["ci"], "seeds": len(common),
                         "verdict": "tie" if tied else ("higher" if d["mean"] > 0 else "lower")})
    return pd.DataFrame(rows).set_index(["task", "metric"])
