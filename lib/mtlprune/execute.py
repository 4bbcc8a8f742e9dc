"""The one grid runner: every (config, seed) pair of a grid, multi-task or multi-domain, through the one run store;
dependencies (a pruned run's dense reference) first, one progress line per run, one run-log table.

A kind of run registers how it runs, what it depends on and its log row in `RUN_KINDS` (the multi-task runner and
the multi-domain runner do, at import).
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any, Callable

import pandas as pd

from . import store


@dataclass(frozen=True)
class RunKind:
    run: Callable[[Any, int, bool, str | None], dict[str, Any]]  # (cfg, seed, progress, profile) -> summary
    row: Callable[[Any, dict[str, Any]], dict[str, Any]]  # the run-log columns of one finished run
    depends: Callable[[Any], list[Any]]  # configs that must run first (at the same seed)


RUN_KINDS: dict[type, RunKind] = {}


def kind_of(cfg: Any) -> RunKind:
    from . import runner  # noqa: F401 - registration side effects
    from .mdl import runner as mdl_runner  # noqa: F401


    for typ, kind in RUN_KINDS.items():
        if isinstance(cfg, typ):
            return kind
    raise TypeError(f"no run kind registered for {type(cfg).__name__}")


def run_pairs(pairs: list[tuple[Any, int]], profile: str | None = None, progress: bool = True) -> pd.DataFrame:
    """Run (or load) every (config, seed) pair, dependencies first. Returns the run log as one table.

    With `progress` (interactive use) a line per run is printed as it finishes; the book pipeline turns it off so a
    chapter keeps one table instead of a stream of outputs (ipykernel forwards even the kernel's raw stderr).
    """
    deps: list[tuple[Any, int]] = []
    for cfg, seed in pairs:
        for dep in kind_of(cfg).depends(cfg):
            if (dep, seed) not in deps:
                deps.append((dep, seed))
    deps.sort(key=lambda p: p[1])
    todo = deps + [p for p in pairs if p not in deps]
    rows = []
    for i, (cfg, seed) in enumerate(todo, 1):
        kind = kind_of(cfg)
        cached = store.is_complete(cfg.run_id, seed)
        t = time.perf_counter()
        summary = kind.run(cfg, seed, progress, profile)
        status = "cached" if cached else f"trained in {time.perf_counter() - t:.0f} s"
        rows.append({"run_id": cfg.run_id, **kind.row(cfg, summary), "seed": seed, "status": status})
        if progress:
            shown = ", ".join(f"{k} {v:.4g}" if isinstance(v, float) else f"{k} {v}" for k, v in rows[-1].items()
                              if k not in ("run_id", "status"))
            print(f"[{i}/{len(todo)}] {shown} ({status})", flush=True)
    return pd.DataFrame(rows).set_index("run_id")


def run_seeds(cfg: Any, seeds: list[int], profile: str | None = None, progress: bool = True) -> pd.DataFrame:
    """Run (or load) `cfg` for every seed; returns the run log (one row per run)."""
    return run_pairs([(cfg, s) for s in seeds], profile=profile, progress=progress)


def run_labelled(labelled: list[tuple[str, Any, int]], profile: str | None = None,
                 progress: bool = True) -> pd.DataFrame:
    log = run_pairs([(cfg, seed) for _, cfg, seed in labelled], profile=profile, progress=progress)
    labels = {cfg.run_id: label for label, cfg, _ in labelled}
    return log.assign(variant=[labels.get(rid, "dense reference") for rid in log.index])


def run_ids(pairs: list[tuple[Any, int]]) -> list[str]:
    return sorted({cfg.run_id for cfg, _ in pairs})
