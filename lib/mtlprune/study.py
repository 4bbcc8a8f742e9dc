"""What notebooks call: build and check configs from notebook parameters, run them over seeds, and summarise.

Notebooks declare parameters and call these functions; every check happens here, before any training starts, so a
bad parameter fails the notebook in its first cells with one clear message.
"""

from __future__ import annotations

import sys
import time
from typing import Any, Iterable

import pandas as pd
import torch

from . import paths
from .config import RunConfig
from .metrics import METRICS
from .models import build_model
from .profiles import PROFILES, make_config
from .results import load_history, load_summaries
from .runner import is_complete, run
from .train import Runtime

_SETTING_OF = {"backbone": "model.backbone", "iterations": "train.iterations", "batch_size": "train.batch_size",
               "lr": "train.lr"}


def check_seeds(seeds: Any) -> list[int]:
    if isinstance(seeds, int) and not isinstance(seeds, bool):
        seeds = [seeds]
    if (not isinstance(seeds, (list, tuple)) or not seeds
            or not all(isinstance(s, int) and not isinstance(s, bool) and s >= 0 for s in seeds)):
        raise ValueError(f"seeds must be a non-empty list of non-negative integers, got {seeds!r}")
    if len(set(seeds)) != len(seeds):
        raise ValueError(f"seeds must not repeat, got {seeds!r}")
    return list(seeds)


def dense_config(profile: str, **settings: Any) -> RunConfig:
    """The dense reference of `profile`, with notebook-level settings (None = the profile's value)."""
    if profile not in PROFILES:
        raise ValueError(f"unknown profile {profile!r}; valid: {', '.join(PROFILES)}")
    unknown = set(settings) - set(_SETTING_OF)
    if unknown:
        raise ValueError(f"unknown setting(s) {sorted(unknown)}; valid: {sorted(_SETTING_OF)}")
    overrides = {_SETTING_OF[k]: v for k, v in settings.items() if v is not None}
    return make_config(profile, "dense", overrides=overrides)


def run_seeds(cfg: RunConfig, seeds: Iterable[int], profile: str | None = None,
              progress: bool = True) -> list[dict[str, Any]]:
    """Run (or load) `cfg` for every seed, printing one line per run."""
    out = []
    for seed in seeds:
        cached = is_complete(cfg, seed)
        t = time.perf_counter()
        summary = run(cfg, seed, Runtime(progress=progress), profile=profile)
        how = "cached" if cached else f"trained in {time.perf_counter() - t:.0f} s"
        dt = summary["delta_t"]["mean"]
        print(f"{cfg.run_id} seed {seed}: {how}; Δ_T {'n/a' if dt is None else f'{dt:+.2f}'}, "
              f"sparsity {summary['sparsity']['overall']:.3f}", file=sys.stdout, flush=True)
        out.append(summary)
    return out


def describe(cfg: RunConfig) -> pd.DataFrame:
    """Size of each component of the model `cfg` builds."""
    model = build_model(cfg.model, cfg.tasks)
    rows = [{"component": name, "parameters": sum(p.numel() for p in mod.parameters())}
            for name, mod in model.components().items()]
    return pd.DataFrame(rows).set_index("component")


def histories(cfg: RunConfig, seeds: Iterable[int]) -> pd.DataFrame:
    frames = [load_history(cfg.run_id, s).assign(seed=s) for s in seeds]
    return pd.concat(frames, ignore_index=True)


def metric_summary(cfg: RunConfig, seeds: Iterable[int]) -> pd.DataFrame:
    """Test metrics of `cfg`: mean and sd over seeds, one row per (task, metric), in the paper's order."""
    df = load_summaries([cfg.run_id])
    df = df[(df["split"] == "test") & df["seed"].isin(list(seeds))]
    order = [(t, m) for t, ms in METRICS.items() for m, _ in ms]
    g = df.groupby(["task", "metric"])["value"].agg(["mean", "std", "count"])
    g = g.reindex([o for o in order if o in g.index])
    higher = {(t, m): ("↑" if s > 0 else "↓") for t, ms in METRICS.items() for m, s in ms}
    g.insert(0, "better", [higher[i] for i in g.index])
    return g.rename(columns={"std": "sd", "count": "seeds"})


def load_trained_model(cfg: RunConfig, seed: int) -> torch.nn.Module:
    model = build_model(cfg.model, cfg.tasks)
    state = torch.load(paths.seed_dir(cfg.run_id, seed) / "model.pt", map_location="cpu")
    model.load_state_dict(state)
    return model.eval()


def glue_metrics(prefix: str, table: pd.DataFrame) -> None:
    """Glue every (task, metric) mean of a `metric_summary` table as `<prefix>_<task>_<metric>` for the prose."""
    from myst_nb import glue

    for (task, metric), row in table.iterrows():
        glue(f"{prefix}_{task}_{metric}", float(row["mean"]), display=False)
