"""The kinds of run, in one table: for each config type, how it runs (through the run store), the keys its summary
must hold, the runs it depends on, its run-log row, the CPU threads it pins and what packed runs of it share.

    multi-task     `RunConfig`    (`multitask.run`)        depends on its dense reference, at the same seed
    multi-domain   `MDLConfig`    (`multidomain.run_mdl`)  depends on its source pretraining, at the source's seed
    source         `SourceConfig` (`multidomain.run_source`)

The grid runner (`grid`), the executors, the result loaders and the study read runs through this table only.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable

from ..core.config import MDLConfig, RunConfig, SourceConfig
from ..core.identity import run_id
from ..core.runtime import Runtime
from . import multidomain, multitask, store


@dataclass(frozen=True)
class RunKind:
    name: str
    config: type
    run: Callable[[Any, int, bool, str | None], dict[str, Any]]  # (cfg, seed, progress, profile) -> summary
    summary_keys: tuple[str, ...]  # what a complete run's summary must hold (checked whenever it is read)
    row: Callable[[Any, dict[str, Any]], dict[str, Any]]  # the run-log columns of one finished run
    depends: Callable[[Any, int], list[tuple[Any, int]]]  # (config, seed) pairs that must run first
    threads: Callable[[Any], int]  # CPU threads the config pins (0: none; `executors.packing`)
    # what runs packed side by side share, made once in this process before they start (data): workers would
    # otherwise wait on each other's locks, and print that they do
    prepare: Callable[[Any], None]
    # (validations, checkpoints) one trained network of the config performs over its run (`cost`: what it costs)
    events: Callable[[Any], tuple[int, int]]
    length: str  # the setting that holds the run's training iterations (dotted)
    # settings that change what a run computes but not what one of its steps costs (`cost.cost_class`)
    cost_free: tuple[str, ...]
    # the periodic updates of a run (a pruning strategy's mask updates, `PruningStrategy.updates`; None: none that
    # the run times apart from its steps, `loop.LoopClock.update_seconds`)
    updates: Callable[[Any], int | None] = lambda cfg: None


KINDS: tuple[RunKind, ...] = (
    RunKind("multi-task", RunConfig,
            run=lambda cfg, seed, progress, profile: multitask.run(cfg, seed, Runtime(progress=progress), profile),
            summary_keys=multitask.SUMMARY_KEYS, row=multitask.log_row,
            depends=lambda cfg, seed: [(cfg.dense, seed)] if cfg.dense is not None else [],
            threads=lambda cfg: cfg.train.threads, prepare=multitask.prepare, events=multitask.events,
            length="train.iterations", cost_free=("pruning.sparsity",), updates=multitask.updates),
    RunKind("multi-domain", MDLConfig,
            run=lambda cfg, seed, progress, profile: multidomain.run_mdl(cfg, seed, progress, profile),
            summary_keys=multidomain.SUMMARY_KEYS, row=multidomain.log_row,
            depends=lambda cfg, seed: [(cfg.source, cfg.source.seed)],
            threads=lambda cfg: cfg.train.threads, prepare=multidomain.prepare, events=multidomain.events,
            length="train.iterations", cost_free=("method.budget",)),
    RunKind("source", SourceConfig,
            run=lambda cfg, seed, progress, profile: multidomain.run_source(cfg, progress, profile),
            summary_keys=multidomain.SOURCE_KEYS, row=multidomain.source_row, depends=lambda cfg, seed: [],
            threads=lambda cfg: cfg.threads, prepare=multidomain.prepare, events=multidomain.events,
            length="iterations", cost_free=("seed",)),
)


def kind_of(cfg: Any) -> RunKind:
    for kind in KINDS:
        if isinstance(cfg, kind.config):
            return kind
    raise TypeError(f"no run kind for {type(cfg).__name__}; the kinds: {', '.join(k.name for k in KINDS)}")


def is_complete(cfg: Any, seed: int) -> bool:
    return store.is_complete(run_id(cfg), seed)


def summary(cfg: Any, seed: int) -> dict[str, Any]:
    """The summary of a complete run, checked against its kind's schema (a CacheError naming the fix otherwise)."""
    return store.cached(run_id(cfg), seed, kind_of(cfg).summary_keys)
