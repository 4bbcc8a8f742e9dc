"""One loader: run folders -> tidy pandas DataFrames (multi-task summaries, multi-domain results, training histories,
per-layer sparsity, the index of every run) and the trained models the chapters show."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Iterable

import pandas as pd

import torch

from ..core import catalogue, paths
from ..core.config import MDLConfig, RunConfig, from_dict, to_dict
from ..core.identity import run_id
from ..core.metrics import METRICS
from ..core.models import build_model, prunable_layers
from . import store
from .kinds import summary
from .multitask import SUMMARY_KEYS
from .store import load_state, read_summary, rerun_fix

ID_COLUMNS = ["run_id", "method", "weighting", "backbone", "sparsity_requested", "sparsity", "seed", "profile"]


def summary_files(run_ids: Iterable[str] | None = None) -> list[Path]:
    root = paths.runs_root()
    if run_ids is None:
        return sorted(root.glob("*/seed_*/summary.json"))
    return sorted(p for rid in set(run_ids) for p in (root / rid).glob("seed_*/summary.json"))


def run_index() -> pd.DataFrame:
    """Every completed run of the store, any kind (multi-task, multi-domain, source pretraining): one row per (run,
    seed) with what computed it (profile, threads, device, commit) and its training time."""
    rows = []
    for path in summary_files():
        s = read_summary(path, ("run_id",))
        env = s.get("env") or {}
        rows.append({"run_id": s["run_id"], "kind": s.get("kind") or s["run_id"].rsplit("-", 1)[0],
                     "seed": int(path.parent.name.split("_", 1)[1]), "profile": s.get("profile"),
                     "train_seconds": float(s.get("train_seconds") or 0.0),
                     "threads": s.get("threads", env.get("threads")), "device": s.get("device", "cpu"),
                     "commit": (s.get("git_commit") or env.get("git_commit") or "")[:10]})
    return pd.DataFrame(rows, columns=["run_id", "kind", "seed", "profile", "train_seconds", "threads", "device",
                                       "commit"])


def run_totals(index: pd.DataFrame) -> pd.DataFrame:
    """`run_index` per kind of run: configurations, (run, seed) folders, training minutes; last row `all`."""
    g = index.groupby("kind")
    out = pd.DataFrame({"configurations": g["run_id"].nunique(), "runs (with seeds)": g.size(),
                        "training (min)": g["train_seconds"].sum() / 60})
    out = out.sort_values("training (min)", ascending=False)
    out.loc["all"] = [index["run_id"].nunique(), len(index), index["train_seconds"].sum() / 60]
    return out.astype({"configurations": int, "runs (with seeds)": int}).round({"training (min)": 1})


def load_summaries(run_ids: Iterable[str] | None = None) -> pd.DataFrame:
    """Tidy long table: one row per (run, seed, split, task, metric) plus Δ rows (task = each task or `mean`)."""
    rows = []
    for path in summary_files(run_ids):
        s = read_summary(path, SUMMARY_KEYS)
        ident = {"run_id": s["run_id"], "method": s["method"], "weighting": s.get("weighting"),
                 "backbone": s.get("backbone"), "sparsity_requested": s["sparsity_requested"],
                 "sparsity": s["sparsity"]["overall"], "seed": s["seed"], "profile": s.get("profile")}
        for split, key in (("test", "metrics"), ("val", "val_metrics")):
            for task, ms in s[key].items():
                for metric, value in ms.items():
                    rows.append({**ident, "split": split, "task": task, "metric": metric, "value": value})
        for agg in ("delta_t", "delta_p"):
            for task, value in s[agg].items():
                rows.append({**ident, "split": "test", "task": task, "metric": agg, "value": value})
        for comp, value in s["sparsity"]["components"].items():
            rows.append({**ident, "split": "model", "task": comp, "metric": "sparsity", "value": value})
    return pd.DataFrame(rows, columns=ID_COLUMNS + ["split", "task", "metric", "value"])


def metric_table(df: pd.DataFrame, split: str = "test") -> pd.DataFrame:
    """Wide table in the shape of the AdapMTL paper: rows = runs (mean over seeds), columns = (task, metric)."""
    order = [(t, m) for t, ms in METRICS.items() for m, _ in ms] + [(t, "delta_t") for t in METRICS] + \
            [("mean", "delta_t"), ("mean", "delta_p")]
    sub = df[df["split"].eq(split) | df["metric"].isin(["delta_t", "delta_p"])]
    wide = sub.pivot_table(index=["method", "sparsity_requested"], columns=["task", "metric"], values="value",
                           aggfunc="mean")
    return wide[[c for c in order if c in wide.columns]]


def load_history(rid: str, seed: int) -> pd.DataFrame:
    """The training history of any run (multi-task or multi-domain: one `history.jsonl` format), by run id."""
    return pd.DataFrame(store.read_history(paths.seed_dir(rid, seed)))


def network_order(config: dict) -> dict[str, int]:
    """Layer name -> position in the network's forward order, for the architecture of a canonical run config.
    (summary.json stores layers under sorted keys, which would put a backbone's stem after its last block.)"""
    cfg = from_dict(RunConfig, config)
    key = json.dumps([to_dict(cfg.model), list(cfg.tasks)])
    if key not in _ORDER_CACHE:
        _ORDER_CACHE[key] = {layer.name: i for i, layer in enumerate(prunable_layers(build_model(cfg.model, cfg.tasks)))}
    return _ORDER_CACHE[key]


_ORDER_CACHE: dict[str, dict[str, int]] = {}


def load_layer_sparsity(run_ids: Iterable[str] | None = None) -> pd.DataFrame:
    """One row per (run, seed, prunable layer): achieved sparsity, zeros, parameter count; `order` = network order."""
    rows = []
    for path in summary_files(run_ids):
        s = read_summary(path, SUMMARY_KEYS)
        order = network_order(s["config"])
        for layer, info in s["sparsity_layers"].items():
            rows.append({"run_id": s["run_id"], "method": s["method"], "seed": s["seed"],
                         "sparsity_requested": s["sparsity_requested"], "layer": layer, "order": order[layer], **info})
    return pd.DataFrame(rows).sort_values(["run_id", "seed", "order"], ignore_index=True)


def histories(cfg: RunConfig, seeds: Iterable[int]) -> pd.DataFrame:
    frames = [load_history(run_id(cfg), s).assign(seed=s) for s in seeds]
    return pd.concat(frames, ignore_index=True)


def histories_of(pairs: list[tuple[RunConfig, int]]) -> pd.DataFrame:
    frames = [load_history(run_id(cfg), seed).assign(method=cfg.kind, sparsity_requested=cfg.pruning.sparsity,
                                                     seed=seed) for cfg, seed in pairs]
    return pd.concat(frames, ignore_index=True)


def labelled_summaries(labelled: list[tuple[str, RunConfig, int]]) -> pd.DataFrame:
    """`load_summaries` of the labelled runs with a `variant` column (the label)."""
    labels = {run_id(cfg): label for label, cfg, _ in labelled}
    df = summaries_of([(cfg, seed) for _, cfg, seed in labelled])
    df = df[df["run_id"].isin(labels)]
    return df.assign(variant=df["run_id"].map(labels))


def labelled_histories(labelled: list[tuple[str, RunConfig, int]]) -> pd.DataFrame:
    frames = [load_history(run_id(cfg), seed).assign(variant=label, seed=seed, sparsity_requested=cfg.pruning.sparsity)
              for label, cfg, seed in labelled]
    return pd.concat(frames, ignore_index=True)


def summaries_of(pairs: list[tuple[RunConfig, int]]) -> pd.DataFrame:
    """`load_summaries` of exactly these (run, seed) pairs and their dense references: other seeds of the same runs
    (e.g. extra seeds a later chapter added) never leak in, so a chapter shows the same numbers on every rebuild."""
    keep = {(run_id(cfg), s) for cfg, s in pairs} | {(run_id(cfg.dense), s) for cfg, s in pairs if cfg.dense is not None}
    df = load_summaries({r for r, _ in keep})
    return df[[(r, s) in keep for r, s in zip(df["run_id"], df["seed"])]].reset_index(drop=True)


def layer_sparsity_of(pairs: list[tuple[RunConfig, int]]) -> pd.DataFrame:
    """`load_layer_sparsity` of exactly these (run, seed) pairs."""
    keep = {(run_id(cfg), s) for cfg, s in pairs}
    df = load_layer_sparsity({r for r, _ in keep})
    return df[[(r, s) in keep for r, s in zip(df["run_id"], df["seed"])]].reset_index(drop=True)


def load_trained_model(cfg: RunConfig, seed: int) -> torch.nn.Module:
    model = build_model(cfg.model, cfg.tasks)
    folder = paths.seed_dir(run_id(cfg), seed)
    state = load_state(folder / "model.pt", "the trained weights", rerun_fix(folder))
    model.load_state_dict(state)
    return model.eval()


def mdl_results(pairs: list[tuple[MDLConfig, int]]) -> pd.DataFrame:
    """One row per multi-domain (run, seed): its label, whether it trades accuracy against a budget (`switched`),
    accuracy per domain and mean, cost ratios (parameters, MACs, latency with its interquartile range, bytes) and the
    union / intersection / Jaccard of the domains' filter sets."""
    rows = []
    for cfg, seed in pairs:
        s = summary(cfg, seed)
        rows.append({"run_id": run_id(cfg), "method": catalogue.mdl_label(cfg.method),
                     "switched": catalogue.mdl_method(cfg.method.name).family == "switches",
                     "budget": cfg.method.budget, "seed": seed,
                     **{f"acc {d}": a for d, a in s["accuracy"].items()}, "mean accuracy": s["mean_accuracy"],
                     "params ratio": s["params_ratio"], "MACs ratio": s["macs_ratio"],
                     "latency ratio": s["latency_ratio"],
                     "latency IQR": s["latency_ratio_iqr"][1] - s["latency_ratio_iqr"][0],
                     "latency q1": s["latency_ratio_iqr"][0], "latency q3": s["latency_ratio_iqr"][1],
                     "bytes ratio": s["bytes_ratio"],
                     "union": s.get("union"), "intersection": s.get("intersection"), "jaccard": s.get("jaccard")})
    return pd.DataFrame(rows)


def filter_usage(cfg: MDLConfig, seed: int) -> pd.DataFrame:
    """Long table: block, filter, domain, used (0/1) of a switched multi-domain run."""
    s = summary(cfg, seed)
    rows = [{"block": b, "filter": f, "domain": d, "used": u}
            for b, doms in s.get("filter_usage", {}).items() for d, us in doms.items() for f, u in enumerate(us)]
    return pd.DataFrame(rows)


def mdl_histories(pairs: list[tuple[MDLConfig, int]]) -> pd.DataFrame:
    frames = [load_history(run_id(cfg), seed).assign(method=catalogue.mdl_label(cfg.method),
                                                     budget=cfg.method.budget, seed=seed) for cfg, seed in pairs]
    return pd.concat(frames, ignore_index=True)
