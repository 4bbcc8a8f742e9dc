"""The one grid runner: every (config, seed) pair of a grid, multi-task or multi-domain, through the one run store on
one executor (`executors`); dependencies (a pruned run's dense reference) first, one progress bar, one run-log table.

A kind of run registers how it runs, what it depends on and its log row in `RUN_KINDS` (the multi-task runner and
the multi-domain runner do, at import).
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any, Callable

import pandas as pd
from tqdm import tqdm

from . import store
from .errors import GridError


@dataclass(frozen=True)
class RunKind:
    run: Callable[[Any, int, bool, str | None], dict[str, Any]]  # (cfg, seed, progress, profile) -> summary
    row: Callable[[Any, dict[str, Any]], dict[str, Any]]  # the run-log columns of one finished run
    depends: Callable[[Any], list[Any]]  # configs that must run first (at the same seed)
    threads: Callable[[Any], int] = lambda cfg: 0  # CPU threads the config pins (0: none; `executors.packing`)
    # what runs packed side by side share, made once in this process before they start (data, a pretrained source):
    # workers would otherwise wait on each other's locks, and print that they do
    prepare: Callable[[Any], None] = lambda cfg: None


RUN_KINDS: dict[type, RunKind] = {}


def kind_of(cfg: Any) -> RunKind:
    from . import runner  # noqa: F401 - registration side effects
    from .mdl import runner as mdl_runner  # noqa: F401


    for typ, kind in RUN_KINDS.items():
        if isinstance(cfg, typ):
            return kind
    raise TypeError(f"no run kind registered for {type(cfg).__name__}")


def run_pairs(pairs: list[tuple[Any, int]], profile: str | None = None, progress: bool = True,
              executor: str | None = None) -> pd.DataFrame:
    """Run (or load) every (config, seed) pair, dependencies first, on an executor (`executors`: local, processes,
    ray; None: `$MTLPRUNE_EXECUTOR` or local). Returns the run log as one table.

    A completed run is never resubmitted; a run that fails is reported (with every other failure, after the whole grid
    has run: the runs that succeeded are kept in the store) and the runs that depend on it are not started. One
    progress bar covers the grid (`progress`; the book pipeline turns it off).
    """
    from .executors import Job, get_executor

    runner = get_executor(executor)
    deps: list[tuple[Any, int]] = []
    for cfg, seed in pairs:
        for dep in kind_of(cfg).depends(cfg):
            if (dep, seed) not in deps:
                deps.append((dep, seed))
    deps.sort(key=lambda p: p[1])
    waves = [deps, [p for p in dict.fromkeys(pairs) if p not in deps]]
    rows: dict[tuple[str, int], dict[str, Any]] = {}
    failed: dict[tuple[str, int], str] = {}
    bar = tqdm(total=sum(len(w) for w in waves), desc=f"grid ({runner.name})", unit="run", disable=not progress,
               leave=False)
    t0 = time.perf_counter()
    for wave in waves:
        jobs = []
        for cfg, seed in wave:
            blocked = [d for d in kind_of(cfg).depends(cfg) if (d.run_id, seed) in failed]
            if blocked:
                failed[cfg.run_id, seed] = f"not run: its dependency {blocked[0].run_id} failed"
                bar.update()
            elif store.is_complete(cfg.run_id, seed):  # never resubmitted
                rows[cfg.run_id, seed] = _row(cfg, seed, kind_of(cfg).run(cfg, seed, False, profile), "cached")
                bar.update()
            else:
                jobs.append(Job(cfg, seed, profile))
        for job, outcome in runner.run(jobs):
            if isinstance(outcome, BaseException):
                failed[job.cfg.run_id, job.seed] = f"{type(outcome).__name__}: {outcome}"
            else:
                rows[job.cfg.run_id, job.seed] = _row(job.cfg, job.seed, outcome,
                                                      f"trained ({runner.name}, {time.perf_counter() - t0:.0f} s)")
            bar.update()
    bar.close()
    if failed:
        lines = "\n".join(f"  {rid} seed {seed}: {why}" for (rid, seed), why in failed.items())
        raise GridError(f"{len(failed)} of {bar.total} runs failed (the {len(rows)} others are in the run "
                           f"store):\n{lines}")
    order = [(cfg.run_id, seed) for wave in waves for cfg, seed in wave]
    return pd.DataFrame([rows[k] for k in order]).set_index("run_id")


def _row(cfg: Any, seed: int, summary: dict[str, Any], status: str) -> dict[str, Any]:
    return {"run_id": cfg.run_id, **kind_of(cfg).row(cfg, summary), "seed": seed, "status": status}


def run_seeds(cfg: Any, seeds: list[int], profile: str | None = None, progress: bool = True,
              executor: str | None = None) -> pd.DataFrame:
    """Run (or load) `cfg` for every seed; returns the run log (one row per run)."""
    return run_pairs([(cfg, s) for s in seeds], profile=profile, progress=progress, executor=executor)


def precision_control(cfg: Any, seeds: list[int], profile: str | None = None, progress: bool = True,
                      executor: str | None = None) -> Any | None:
    """A bf16 run's float32 twin for the same seeds, run (or loaded), so that what the precision changes is measured
    (`evidence.precision_table`); None for a float32 run (nothing to compare)."""
    if cfg.train.precision != "bf16":
        return None
    from .evidence import precision_twin

    twin = precision_twin(cfg)
    run_seeds(twin, seeds, profile=profile, progress=progress, executor=executor)
    return twin


def run_labelled(labelled: list[tuple[str, Any, int]], profile: str | None = None,
                 progress: bool = True, executor: str | None = None) -> pd.DataFrame:
    log = run_pairs([(cfg, seed) for _, cfg, seed in labelled], profile=profile, progress=progress,
                    executor=executor)
    labels = {cfg.run_id: label for label, cfg, _ in labelled}
    return log.assign(variant=[labels.get(rid, "dense reference") for rid in log.index])


def run_ids(pairs: list[tuple[Any, int]]) -> list[str]:
    return sorted({cfg.run_id for cfg, _ in pairs})
