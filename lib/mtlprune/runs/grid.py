"""The one grid runner: every (config, seed) pair of a grid, of any kind (`kinds`: multi-task, multi-domain, source),
through the one run store on one executor (`executors`); dependencies (a pruned run's dense reference, a multi-domain
run's source pretraining) first, one progress bar with the grid's ETA, one run-log table.
"""

from __future__ import annotations

import time
from typing import Any

import pandas as pd
from tqdm import tqdm

from ..core.errors import GridError
from ..core.identity import run_id
from .executors import Job, get_executor
from .kinds import is_complete, kind_of


def run_pairs(pairs: list[tuple[Any, int]], profile: str | None = None, progress: bool = True,
              executor: str | None = None) -> pd.DataFrame:
    """Run (or load) every (config, seed) pair, dependencies first, on an executor (`executors`: local, processes,
    ray; None: `$MTLPRUNE_EXECUTOR` or local). Returns the run log as one table.

    A completed run is never resubmitted; a run that fails is reported (with every other failure, after the whole grid
    has run: the runs that succeeded are kept in the store) and the runs that depend on it are not started. One
    progress bar covers the grid (`progress`; the book pipeline turns it off).
    """
    runner = get_executor(executor)
    waves = dependency_waves(pairs)
    rows: dict[tuple[str, int], dict[str, Any]] = {}
    failed: dict[tuple[str, int], str] = {}
    bar = tqdm(total=sum(len(w) for w in waves), desc=f"grid ({runner.name})", unit="run", disable=not progress,
               leave=False)
    t0 = time.perf_counter()
    for wave in waves:
        jobs = []
        for cfg, seed in wave:
            blocked = [d for d, s in kind_of(cfg).depends(cfg, seed) if (run_id(d), s) in failed]
            if blocked:
                failed[run_id(cfg), seed] = f"not run: its dependency {run_id(blocked[0])} failed"
                bar.update()
            elif is_complete(cfg, seed):  # never resubmitted
                rows[run_id(cfg), seed] = _row(cfg, seed, kind_of(cfg).run(cfg, seed, False, profile), "cached")
                bar.update()
            else:
                jobs.append(Job(cfg, seed, profile))
        for job, outcome in runner.run(jobs):
            if isinstance(outcome, BaseException):
                failed[run_id(job.cfg), job.seed] = f"{type(outcome).__name__}: {outcome}"
            else:
                rows[run_id(job.cfg), job.seed] = _row(job.cfg, job.seed, outcome,
                                                      f"trained ({runner.name}, {time.perf_counter() - t0:.0f} s)")
            bar.update()
    bar.close()
    if failed:
        lines = "\n".join(f"  {rid} seed {seed}: {why}" for (rid, seed), why in failed.items())
        raise GridError(f"{len(failed)} of {bar.total} runs failed (the {len(rows)} others are in the run "
                           f"store):\n{lines}")
    order = [(run_id(cfg), seed) for wave in waves for cfg, seed in wave]
    if not order:  # an empty grid (e.g. a claim the profile does not read): nothing ran
        return pd.DataFrame(columns=["run_id", "seed", "status"]).set_index("run_id")
    return pd.DataFrame([rows[k] for k in order]).set_index("run_id")


def dependency_waves(pairs: list[tuple[Any, int]]) -> list[list[tuple[Any, int]]]:
    """The grid's two waves: the runs `pairs` depend on (by seed), then the pairs that are not among them, each
    once."""
    deps: list[tuple[Any, int]] = []
    for cfg, seed in pairs:
        for dep in kind_of(cfg).depends(cfg, seed):
            if dep not in deps:
                deps.append(dep)
    deps.sort(key=lambda p: p[1])
    return [deps, [p for p in dict.fromkeys(pairs) if p not in deps]]


def _row(cfg: Any, seed: int, summary: dict[str, Any], status: str) -> dict[str, Any]:
    return {"run_id": run_id(cfg), **kind_of(cfg).row(cfg, summary), "seed": seed, "status": status}


def run_seeds(cfg: Any, seeds: list[int], profile: str | None = None, progress: bool = True,
              executor: str | None = None) -> pd.DataFrame:
    """Run (or load) `cfg` for every seed; returns the run log (one row per run)."""
    return run_pairs([(cfg, s) for s in seeds], profile=profile, progress=progress, executor=executor)


def run_labelled(labelled: list[tuple[str, Any, int]], profile: str | None = None,
                 progress: bool = True, executor: str | None = None) -> pd.DataFrame:
    log = run_pairs([(cfg, seed) for _, cfg, seed in labelled], profile=profile, progress=progress,
                    executor=executor)
    labels = {run_id(cfg): label for label, cfg, _ in labelled}
    return log.assign(variant=[labels.get(rid, "dense reference") for rid in log.index])


def run_ids(pairs: list[tuple[Any, int]]) -> list[str]:
    return sorted({run_id(cfg) for cfg, _ in pairs})
