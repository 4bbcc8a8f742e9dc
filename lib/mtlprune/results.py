"""One loader: run folders -> tidy pandas DataFrames (summaries, training histories, per-layer sparsity)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Iterable

import pandas as pd

from . import paths
from .config import RunConfig, from_dict, to_dict
from .metrics import METRICS
from .models import build_model, prunable_layers
from .runner import SUMMARY_KEYS, read_summary

ID_COLUMNS = ["run_id", "method", "weighting", "backbone", "sparsity_requested", "sparsity", "seed", "profile"]


def summary_files(run_ids: Iterable[str] | None = None) -> list[Path]:
    root = paths.runs_root()
    if run_ids is None:
        return sorted(root.glob("*/seed_*/summary.json"))
    return sorted(p for rid in set(run_ids) for p in (root / rid).glob("seed_*/summary.json"))


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


def load_history(run_id: str, seed: int) -> pd.DataFrame:
    path = paths.seed_dir(run_id, seed) / "history.jsonl"
    with open(path) as fh:
        return pd.DataFrame([json.loads(line) for line in fh if line.strip()])


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
