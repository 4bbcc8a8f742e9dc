"""Executors: where a grid's runs are computed. The grid runner (`grid.run_pairs`) hands each wave of runs (the
dependencies, then the runs that start from them) to one executor; every run goes through the one run store
(`store.execute`: cache, lock, atomic summary), so any executor gives the same summaries as running them one by one.

- `local` (default): one after another in this process, except runs that pin fewer CPU threads than the machine has
  cores (a config's `threads`, e.g. the quick multi-domain runs at 1): those are packed side by side, cores // threads
  worker processes at a time, since one small run cannot use the machine (their numbers are the same either way: the
  thread count is part of the config).
- `processes`: N worker processes on this machine (`MTLPRUNE_WORKERS`, default: the CPU count; spawned, with the
  machine's cores split between them), e.g. several runs packed on one GPU or many CPU cores.
- `ray`: Ray core tasks (`pip install .[ray]`), one per run with `MTLPRUNE_RAY_CPUS` CPUs (default 1) and
  `MTLPRUNE_RAY_GPUS` GPUs (fractions allowed, default 0); `ray.init()` starts a local cluster unless
  `MTLPRUNE_RAY_ADDRESS` names an existing one (`ray start --head` on one machine, `ray start --address=...` on the
  others; the run store must then be shared, e.g. on a network file system, or moved with `mtlprune bundle`).

Chosen by `run_pairs(..., executor=)`, a notebook's `executor` parameter, `python -m mtlprune study --executor`, or
the environment variable `MTLPRUNE_EXECUTOR` (what papermill kernels and JupyterLab inherit).
"""

from __future__ import annotations

import concurrent.futures as cf
import logging
import multiprocessing as mp
import os
import threading
import time
import warnings
from dataclasses import dataclass
from typing import Any, Iterator

import torch

from ..core import paths
from ..core.registry import Registry
from .kinds import kind_of

EXECUTORS: Registry = Registry("executor")


@dataclass(frozen=True)
class Job:
    cfg: Any
    seed: int
    profile: str | None


Outcome = tuple[Job, "dict[str, Any] | BaseException"]


def run_job(job: Job) -> dict[str, Any]:
    """One run through its kind's runner (and so through the run store); what every executor calls."""
    return kind_of(job.cfg).run(job.cfg, job.seed, False, job.profile)


def _env_number(name: str, default: float, kind: type = float, minimum: float = 0) -> float:
    """A number from the environment, or one clear error naming the variable and what it must be."""
    raw = os.environ.get(name)
    if raw is None:
        return default
    try:
        value = kind(raw)
    except ValueError:
        value = None
    if value is None or value < minimum:
        raise ValueError(f"{name}={raw!r} must be {'an integer' if kind is int else 'a number'} >= {minimum}")
    return value


class Executor:
    name = "executor"

    def run(self, jobs: list[Job]) -> Iterator[Outcome]:
        """Yield (job, summary or the exception it raised) as each job finishes, in any order."""
        raise NotImplementedError


def packing(jobs: list[Job]) -> int:
    """How many of `jobs` can run side by side on this machine's cores: cores // threads when every job pins its
    threads (`RunKind.threads`), else 1."""
    pinned = [kind_of(job.cfg).threads(job.cfg) for job in jobs]
    if len(jobs) < 2 or not all(pinned):
        return 1
    return max(1, min(len(jobs), (os.cpu_count() or 1) // max(pinned)))


@EXECUTORS.register("local")
class Local(Executor):
    name = "local"

    def run(self, jobs):
        width = packing(jobs)
        if width > 1:
            for job in jobs:
                kind_of(job.cfg).prepare(job.cfg)
            yield from _pool(jobs, width, threads=1)  # every job sets its own pinned threads
            return
        for job in jobs:
            try:
                yield job, run_job(job)
            except Exception as exc:  # noqa: BLE001 - reported by the grid runner, the others go on
                yield job, exc


ORPHAN_POLL_S = 1.0  # how often a worker checks that the process that started it is alive


def _exit_when_orphaned(parent: int) -> None:
    """Stop this worker once its parent is gone: a study or script killed mid-grid (Ctrl-C twice, `kill`) must not leave
    workers computing unseen on the machine's cores. A run killed this way resumes from its last checkpoint."""
    while True:
        time.sleep(ORPHAN_POLL_S)
        if os.getppid() != parent:
            os._exit(3)


def _init_worker(threads: int, parent: int) -> None:
    torch.set_num_threads(threads)
    threading.Thread(target=_exit_when_orphaned, args=(parent,), daemon=True, name="orphan-watch").start()


def _pool(jobs: list[Job], workers: int, threads: int) -> Iterator[Outcome]:
    """`jobs` on `workers` spawned processes of `threads` threads each, yielded as they finish."""
    with cf.ProcessPoolExecutor(workers, mp_context=mp.get_context("spawn"), initializer=_init_worker,
                                initargs=(threads, os.getpid())) as pool:
        futures = {pool.submit(run_job, job): job for job in jobs}
        for future in cf.as_completed(futures):
            exc = future.exception()
            if isinstance(exc, cf.process.BrokenProcessPool):
                exc = RuntimeError("a worker process died before finishing this run: it ran out of memory or was "
                                   "killed, or a script started the grid without `if __name__ == \"__main__\":` "
                                   "(spawned workers import the script again; notebooks and `python -m mtlprune` "
                                   "need nothing). Fix the cause and rerun: finished runs are kept")
            yield futures[future], exc if exc is not None else future.result()


@EXECUTORS.register("processes")
class Processes(Executor):
    name = "processes"

    def __init__(self) -> None:
        self.workers = _env_number("MTLPRUNE_WORKERS", os.cpu_count() or 1, int, 1)

    def run(self, jobs):
        if not jobs:
            return
        # the machine's cores split between the workers (a wave of one run keeps them all); summaries agree bit for
        # bit with a local run at the same threads per run (`env.threads` in every summary; a run that pins its
        # threads in its config sets them itself), else to float rounding
        workers = min(self.workers, len(jobs))
        threads = max(1, (os.cpu_count() or 1) // self.workers)
        yield from _pool(jobs, workers, threads)


@EXECUTORS.register("ray")
class Ray(Executor):
    name = "ray"

    def __init__(self) -> None:
        try:
            _import_ray()
        except ImportError:
            raise ValueError("the ray executor needs Ray: pip install '.[ray]' (or choose --executor local | "
                             "processes)") from None
        self.cpus = _env_number("MTLPRUNE_RAY_CPUS", 1.0)
        self.gpus = _env_number("MTLPRUNE_RAY_GPUS", 0.0)

    def run(self, jobs):
        ray = _import_ray()
        if not jobs:
            return
        ensure_ray()
        task = ray.remote(run_job).options(num_cpus=self.cpus, num_gpus=self.gpus, max_retries=0)
        pending = {task.remote(job): job for job in jobs}
        while pending:
            done, _ = ray.wait(list(pending), num_returns=1)
            job = pending.pop(done[0])
            try:
                yield job, ray.get(done[0])
            except ray.exceptions.RayTaskError as exc:
                yield job, exc.as_instanceof_cause()
            except Exception as exc:  # noqa: BLE001 - a worker lost, etc.: reported like a failed run
                yield job, exc


def _import_ray():
    """Ray, imported without the notices it prints inside notebooks (a tqdm widget warning naming a machine path, an
    INFO line about ipywidgets): chapters stay free of warnings."""
    logging.getLogger("ray.widgets.util").setLevel(logging.WARNING)  # it logs at import time, inside notebooks
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        import ray
    logging.getLogger("ray").setLevel(logging.WARNING)
    return ray


def ensure_ray() -> str:
    """Connect to `MTLPRUNE_RAY_ADDRESS`, or start a local cluster once; returns the cluster's address. Workers get
    this process's run store and data locations."""
    ray = _import_ray()

    if not ray.is_initialized():
        env = {k: v for k, v in os.environ.items() if k.startswith("MTLPRUNE_") and k != "MTLPRUNE_RAY_ADDRESS"}
        address = os.environ.get("MTLPRUNE_RAY_ADDRESS") or None
        # the library on the driver's path: workers import the same code (a local cluster shares the file system)
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(paths.REPO_ROOT / "lib"),
                                                          os.environ.get("PYTHONPATH")]))
        ray.init(address=address, include_dashboard=False, log_to_driver=False, ignore_reinit_error=True,
                 logging_level="ERROR", runtime_env={"env_vars": env})
    return ray.get_runtime_context().gcs_address


def get_executor(name: str | None = None) -> Executor:
    """The executor `name`, else `$MTLPRUNE_EXECUTOR`, else `local`."""
    name = name or os.environ.get("MTLPRUNE_EXECUTOR") or "local"
    return EXECUTORS.get(name)()


def executor_names() -> list[str]:
    return EXECUTORS.names()

