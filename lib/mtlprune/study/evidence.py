"""Evidence from the runs: per-run records with Δ against the dense reference *and* the equal-training control, runs
collapsed to chance, the comparison table (leaderboard with intervals and ties), the dense plateau table and what the
precision changes (a run against its float32 twin). The statistics themselves are `stats`.

Conventions (stated in the book, `conventions.md`):
- Δ_T (AdapMTL's: per task the sum of signed relative changes in %, mean over tasks) of a pruned run against the dense
  reference of its seed (`delta_t`) and against `dense_finetune`, the reference trained on for the same sparse phase
  (`delta_t_control`): the first credits pruned runs with their extra training, the second measures pruning alone.
- Collapse: a run whose primary metric of some task (mIoU, depth abs. error, mean normal angle) is no better than a
  constant predictor's on the same test split (`chance_metrics`) is flagged and left out of every ranking.
"""

from __future__ import annotations

import json
from dataclasses import replace
from typing import Any, Iterable

import numpy as np
import pandas as pd

from ..core import catalogue
from ..core.config import PruningConfig, RunConfig, to_dict
from ..core.data.loading import load_data
from ..core.identity import run_id
from ..core.metrics import METRICS, delta_t
from ..core.tasks import TaskMeters, primary, task_spec
from ..core.validate import validate
from ..runs.grid import run_seeds
from ..runs.kinds import is_complete, summary
from ..runs.results import load_history, load_summaries
from .stats import (PLATEAU_TOLERANCE, convergence, fmt_interval, interval, iv_of, plateau, summarize, verdict)

PRIMARY = primary()  # every task's headline metric (its spec's; signs: METRICS)


def control_config(cfg: RunConfig) -> RunConfig:
    """The equal-training control of a pruned run: its dense reference trained on for the same sparse phase (every
    train/data setting of the run), without pruning and with the reference's own loss weighting."""
    if cfg.dense is None:
        raise ValueError(f"{run_id(cfg)} is a dense reference: it has no sparse phase to match")
    out = replace(cfg, pruning=PruningConfig(method="dense_finetune", sparsity=0.0), weighting=cfg.dense.weighting)
    validate(out)
    return out


def with_controls(pairs: Iterable[tuple[RunConfig, int]]) -> list[tuple[RunConfig, int]]:
    """`pairs` plus the control of every pruned (config, seed), each once."""
    pairs = list(pairs)
    out = {(run_id(c), s): (c, s) for c, s in pairs}
    for cfg, seed in pairs:
        if cfg.dense is not None and cfg.pruning.method != "dense_finetune":
            ctl = control_config(cfg)
            out.setdefault((run_id(ctl), seed), (ctl, seed))
    return list(out.values())


_CHANCE: dict[str, dict[str, dict[str, float]]] = {}


def chance_metrics(cfg: RunConfig) -> dict[str, dict[str, float]]:
    """Test metrics of constant predictors fitted on the training split (each task spec's: the majority class, the
    mean valid depth, the mean normal direction). A run no better than these on a task has collapsed. Computed once
    per dataset (every config of a study shares it)."""
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
        if not is_complete(cfg, seed):
            continue
        s = summary(cfg, seed)
        row: dict[str, Any] = {
            "run_id": run_id(cfg), "method": cfg.kind, "label": given or catalogue.label(cfg.kind),
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
            if is_complete(ctl, seed):
                c = summary(ctl, seed)
                row["delta_t_control"] = delta_t(s["metrics"], c["metrics"])["mean"]
        bad = collapsed_tasks(s["metrics"], chance_metrics(cfg))
        row["collapsed"] = ", ".join(bad)
        rows.append(row)
    return pd.DataFrame(rows)


def dense_doubling_records(pairs: Iterable[tuple[RunConfig, int]]) -> pd.DataFrame:
    """The dense references of `pairs` (one config at several lengths, `grids.dense_doubling_pairs`) as records that
    `stats.convergence` reads like a sparse-phase grid: one row per completed (length, seed) with `budget` = its
    iterations and `delta_t` = Δ_T of its test metrics against the mean over seeds of the shortest length's (so the
    shortest length's mean is 0 and its interval is the seed spread); `delta_t_control` is empty (no control)."""
    done = [(cfg, s, summary(cfg, s)["metrics"]) for cfg, s in pairs if cfg.dense is None and is_complete(cfg, s)]
    if not done:
        return pd.DataFrame(columns=["method", "budget", "seed", "delta_t", "delta_t_control", "collapsed"])
    shortest = min(cfg.train.iterations for cfg, _, _ in done)
    base = [m for cfg, _, m in done if cfg.train.iterations == shortest]
    reference = {t: {m: float(np.mean([b[t][m] for b in base])) for m in base[0][t]} for t in base[0]}
    return pd.DataFrame([{"method": "dense", "budget": cfg.train.iterations, "seed": seed,
                          "delta_t": delta_t(metrics, reference)["mean"], "delta_t_control": float("nan"),
                          "collapsed": ", ".join(collapsed_tasks(metrics, chance_metrics(cfg)))}
                         for cfg, seed, metrics in done])


def dense_convergence(pairs: Iterable[tuple[RunConfig, int]]) -> pd.DataFrame:
    """`stats.convergence` of a dense reference's doubling test (`grids.dense_doubling_pairs`, completed)."""
    return convergence(summarize(dense_doubling_records(pairs), ["method", "budget"]))


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
        if head is None or verdict(iv_of(r, value), iv_of(head, value)) != "tie":
            rank, head = i, r  # a new rank opens where the intervals separate from the rank's first row
        ranks[r[by]] = rank
    ref = summ[summ[by] == ours]
    out = pd.DataFrame({
        "rank": [ranks.get(k, "–") for k in summ[by]],
        by: summ[by],
        "Δ_T vs control": [fmt_interval(m, c) for m, c in zip(summ["delta_t_control"], summ["delta_t_control ci"])],
        "Δ_T vs dense": [fmt_interval(m, c) for m, c in zip(summ["delta_t"], summ["delta_t ci"])],
        "sparsity %": (100 * summ["sparsity"]).round(1),
        "seeds": summ["n"],
        "collapsed": summ["collapsed"],
    })
    if ours is not None:
        out[f"{ours} is"] = ["–" if k == ours or ref.empty else verdict(iv_of(ref.iloc[0], value), iv_of(r, value))
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
    rows = []
    for s in seeds:
        p = plateau(load_history(run_id(cfg), s), cfg.tasks)
        rows.append({"seed": s, "iterations": int(p["steps"]), "Δp over the last quarter (%)": round(p["gain"], 2),
                     f"plateau (|Δp| < {PLATEAU_TOLERANCE:g} %)": "yes" if p["holds"] else "NO"})
    return pd.DataFrame(rows)


def precision_twin(cfg: RunConfig, precision: str = "float32") -> RunConfig:
    """The same run computed in another `train.precision`: the control that measures what bf16 autocast changes."""
    return replace(cfg, train=replace(cfg.train, precision=precision))


def precision_table(cfg: RunConfig, twin: RunConfig, seeds: Iterable[int]) -> pd.DataFrame:
    """Test metrics of `cfg` against its `precision_twin`, seed by seed: each precision's mean, the paired difference
    (cfg − twin) with its 95 % interval, and `tie` when that interval holds 0 (else `higher` / `lower`)."""
    df = load_summaries([run_id(cfg), run_id(twin)])
    df = df[(df["split"] == "test") & df["seed"].isin(list(seeds))]
    a_name, b_name = cfg.train.precision, twin.train.precision
    rows = []
    for task, ms in METRICS.items():
        for metric, sign in ms:
            sel = df[(df["task"] == task) & (df["metric"] == metric)]
            a = sel[sel["run_id"] == run_id(cfg)].set_index("seed")["value"]
            b = sel[sel["run_id"] == run_id(twin)].set_index("seed")["value"]
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


def precision_control(cfg: RunConfig, seeds: list[int], profile: str | None = None, progress: bool = True,
                      executor: str | None = None) -> RunConfig | None:
    """A bf16 run's float32 twin for the same seeds, run (or loaded), so that what the precision changes is measured
    (`precision_table`); None for a float32 run (nothing to compare)."""
    if cfg.train.precision != "bf16":
        return None
    twin = precision_twin(cfg)
    run_seeds(twin, seeds, profile=profile, progress=progress, executor=executor)
    return twin
