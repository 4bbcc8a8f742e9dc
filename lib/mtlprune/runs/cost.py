"""What a run costs on this machine, measured before it is paid. A run of any kind takes a fixed time (data, model,
set-up, final evaluation, summary) plus, for each network it trains, its steps, its periodic validations and its
checkpoints (`Cost`; how many of each a run does is its kind's `events`). The four times are measured per *cost
class* (the config without its length, seed, sparsity level, budget and dependencies: what makes one step cheap or
dear) by training a short copy of one member of the class (`SHORT` iterations) in a temporary run store, alone, the
training loop's clock (`loop.CLOCK`) telling steps, validations and checkpoints apart.

The measurements are kept per machine (CPU model, cores, torch version, accelerator) in `data/costs.json`
(`MTLPRUNE_DATA`), so a plan costs seconds after the first; a missing, corrupt or foreign file is measured again.
Runs packed side by side (`executors.packing`) share memory bandwidth and may each run somewhat slower than measured
alone; `render.plan` states its estimate as such and the study prints the time it really took.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import platform
import tempfile
import time
from dataclasses import dataclass, fields, replace
from pathlib import Path
from typing import Any, Callable, Iterator

import torch

from ..core import paths
from ..core.config import with_overrides
from ..core.identity import resolved
from ..core.loop import CLOCK
from ..core.runtime import pinned_threads
from .kinds import kind_of

SHORT = 6  # iterations of the timed short copy
WARMUP = 1  # a first, untimed short copy: one-time costs (oneDNN primitives per shape, kernel loading) are not a run's
DEPENDENCY_ITERATIONS = 2  # a short copy's dense reference / source pretraining (untimed)
FORMAT = 3  # 3: mask updates priced apart from the steps (`per_update`)


@dataclass(frozen=True)
class Cost:
    """Seconds of one run: `fixed` (data, model, pruning set-up, final evaluation, summary) plus, for each of the
    `loops` networks it trains, its steps, validations and checkpoints (`kinds.RunKind.events` counts those) and its
    periodic mask updates (`kinds.RunKind.updates`: DiSparse's every 2.5 % of the run, IMP's rounds)."""
    fixed: float
    per_iteration: float
    per_validation: float
    per_checkpoint: float
    loops: int = 1
    per_update: float = 0.0

    def seconds(self, cfg: Any) -> float:
        kind = kind_of(cfg)
        validations, checkpoints = kind.events(cfg)
        return self.fixed + self.loops * (self.per_iteration * iterations(cfg) + self.per_validation * validations
                                          + self.per_checkpoint * checkpoints
                                          + self.per_update * (kind.updates(cfg) or 0))


def _get(obj: Any, dotted: str) -> Any:
    for part in dotted.split("."):
        obj = getattr(obj, part)
    return obj


def iterations(cfg: Any) -> int:
    """The training iterations of one run (its own, not its dependencies')."""
    return _get(cfg, kind_of(cfg).length)


def cost_class(cfg: Any) -> str:
    """The key of what one training step of `cfg` costs: its resolved config without the run's length, dependency
    and the settings its kind declares free of cost (e.g. AdapMTL at 100 and 200 iterations, or at 0.5 and 0.9
    sparsity, share a class)."""
    kind = kind_of(cfg)
    d = resolved(cfg)
    dep = _dependency_field(cfg)
    for dotted in (kind.length, *kind.cost_free, *([dep] if dep else [])):
        *parents, leaf = dotted.split(".")
        holder = d
        for part in parents:
            holder = holder[part]
        holder.pop(leaf, None)
    text = json.dumps({"type": type(cfg).__name__, **d}, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def machine_key() -> str:
    """What a measurement holds for: CPU model, cores, torch version and the accelerator, if any."""
    cpu = platform.processor() or platform.machine()
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    gpu = torch.cuda.get_device_name(0) if torch.cuda.is_available() else "no GPU"
    return f"{cpu} | {os.cpu_count()} cores | torch {torch.__version__} | {gpu}"


def _dependency_field(cfg: Any) -> str | None:
    """The field of `cfg` that holds the config of the run it starts from (its kind's `depends`), if any."""
    deps = kind_of(cfg).depends(cfg, 0)
    if not deps:
        return None
    return next(f.name for f in fields(cfg) if getattr(cfg, f.name) is deps[0][0])


def short_copy(cfg: Any, n: int) -> Any:
    """`cfg` trained for `n` iterations, its dependency for `DEPENDENCY_ITERATIONS`: the same step, a short run."""
    out = with_overrides(cfg, {kind_of(cfg).length: n})
    field = _dependency_field(out)
    if field is not None:
        dep = getattr(out, field)
        out = replace(out, **{field: with_overrides(dep, {kind_of(dep).length: DEPENDENCY_ITERATIONS})})
    return out


@contextlib.contextmanager
def _temporary_store() -> Iterator[None]:
    """A throw-away run store for the short copies (the real store never sees them); data stays shared."""
    before = os.environ.get("MTLPRUNE_RUNS")
    with tempfile.TemporaryDirectory(prefix="mtlprune-cost-") as tmp:
        os.environ["MTLPRUNE_RUNS"] = tmp
        try:
            yield
        finally:
            if before is None:
                os.environ.pop("MTLPRUNE_RUNS", None)
            else:
                os.environ["MTLPRUNE_RUNS"] = before


def measure(cfg: Any) -> Cost:
    """Time a short copy of `cfg` (`SHORT` iterations, seed 0) alone in a temporary store, after an untimed `WARMUP`
    copy and its dependencies (untimed): the loop's clock (`loop.CLOCK`) splits its time into steps, validations and
    checkpoints; the rest is the run's fixed cost."""
    kind = kind_of(cfg)
    with _temporary_store():
        for n in (WARMUP, SHORT):
            short = short_copy(cfg, n)
            kind.prepare(short)
            for dep, dep_seed in kind.depends(short, 0):
                kind_of(dep).run(dep, dep_seed, False, None)
            before = replace(CLOCK)
            with pinned_threads(kind.threads(short)):
                t = time.perf_counter()
                kind.run(short, 0, False, None)  # a source pretraining trains at its own seed
                wall = time.perf_counter() - t
    d = {f: getattr(CLOCK, f) - getattr(before, f) for f in ("loops", "steps", "step_seconds", "validations",
                                                            "validation_seconds", "checkpoints", "checkpoint_seconds",
                                                            "update_seconds")}
    loops = max(1, d["loops"])
    updates = kind.updates(short) or 0  # the short copy's mask updates: their time is not a step's
    priced_apart = d["update_seconds"] if updates else 0.0
    return Cost(fixed=max(0.0, wall - d["step_seconds"] - d["validation_seconds"] - d["checkpoint_seconds"]),
                per_iteration=max(0.0, d["step_seconds"] - priced_apart) / max(1, d["steps"]),
                per_validation=d["validation_seconds"] / d["validations"] if d["validations"] else 0.0,
                per_checkpoint=d["checkpoint_seconds"] / d["checkpoints"] if d["checkpoints"] else 0.0,
                loops=loops, per_update=priced_apart / (updates * loops) if updates else 0.0)


def _cache_path() -> Path:
    return paths.data_root() / "costs.json"


def _read_cache() -> dict[str, Any]:
    try:
        data = json.loads(_cache_path().read_text())
    except (OSError, ValueError):
        return {}
    if not isinstance(data, dict) or data.get("format") != FORMAT or not isinstance(data.get("machines"), dict):
        return {}
    return data


def _valid(entry: Any) -> bool:
    return (isinstance(entry, dict) and all(isinstance(entry.get(k), (int, float)) and not isinstance(entry[k], bool)
                                            and 0 <= entry[k] < 1e7 for k in _FIELDS)
            and isinstance(entry.get("loops"), int) and 1 <= entry["loops"] <= 10_000)


_FIELDS = ("fixed", "per_iteration", "per_validation", "per_checkpoint", "per_update")


def costs(cfgs: list[Any], on_measure: Callable[[int, int, Any], None] | None = None) -> dict[str, Cost]:
    """The cost of every class among `cfgs` on this machine (class key -> Cost): read from `data/costs.json` where
    measured before, else measured now (`on_measure(i, n, cfg)` before each) and added to the file."""
    data = _read_cache() or {"format": FORMAT, "machines": {}}
    known = data["machines"].setdefault(machine_key(), {})
    out: dict[str, Cost] = {}
    todo: dict[str, Any] = {}
    for cfg in cfgs:
        key = cost_class(cfg)
        if key in out or key in todo:
            continue
        if _valid(known.get(key)):
            out[key] = Cost(**{f: float(known[key][f]) for f in _FIELDS}, loops=known[key]["loops"])
        else:
            todo[key] = cfg
    for i, (key, cfg) in enumerate(todo.items(), 1):
        if on_measure is not None:
            on_measure(i, len(todo), cfg)
        out[key] = measure(cfg)
        known[key] = {**{f: round(getattr(out[key], f), 5) for f in _FIELDS}, "loops": out[key].loops,
                      "measured": time.strftime("%Y-%m-%d %H:%M:%S")}
    if todo:
        path = _cache_path()
        with contextlib.suppress(OSError):  # a read-only data folder: the plan still prints, measured again next time
            path.parent.mkdir(parents=True, exist_ok=True)
            tmp = path.with_suffix(f".tmp-{os.getpid()}")
            tmp.write_text(json.dumps(data, indent=1, sort_keys=True))
            tmp.replace(path)
    return out
