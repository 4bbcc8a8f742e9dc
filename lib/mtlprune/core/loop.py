"""The one training loop of every kind of run (multi-task, multi-domain joint training, source pretraining): the
optimizer step, the batch generator, logging, validation, and resumable checkpoints.

What differs between kinds of run is a `Trainee` (hooks; no method or kind is named here): which optimizer and
schedule, how a batch is drawn and what loss it gives, what happens around the optimizer step (a pruning strategy's or
a multi-domain method's hooks), what is logged, and when it validates and checkpoints. The loop owns the order of
every step, which is what makes a run reproducible and resumable:

    batch = trainee.batch(gen)                   the batch generator (`gen`, seeded, in every checkpoint)
    total, logs = trainee.loss(batch, step)      finite, or the run stops with the trainee's fix named
    zero_grad; total.backward(); trainee.before_step(step); optimizer.step(); schedule.step(); step += 1
    trainee.after_step(step, logs); trainee.record(...) when due; at a period's end: validation, checkpoint

A checkpoint holds tensors and plain containers only (it is read with `weights_only=True`): the model, optimizer and
schedule states, both random generators, the step, epoch, history, elapsed time and the trainee's own state. A killed
run resumes from its last checkpoint to exactly the numbers of an uninterrupted one.
"""

from __future__ import annotations

import errno
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable

import torch
from torch import nn
from tqdm import tqdm  # plain text bars: no widget output in executed notebooks

from .errors import CacheError

CHECKPOINT_FORMAT = 2  # 1: the per-kind formats before the one loop (multi-task and multi-domain differed)


@dataclass
class LoopClock:
    """Where this process's training loops spent their time (`runs.cost` times short runs with it): steps (batch,
    loss, backward, update, logging), validations and checkpoints, and how many of each. Timing only: no number a
    run computes depends on it."""
    loops: int = 0
    steps: int = 0
    step_seconds: float = 0.0
    validations: int = 0
    validation_seconds: float = 0.0
    checkpoints: int = 0
    checkpoint_seconds: float = 0.0
    # the part of the steps' time a trainee spends in periodic work that it times itself (a pruning strategy's mask
    # updates: `train.MultiTaskTrainee`), so that a short run does not price it as if every step did it
    update_seconds: float = 0.0


CLOCK = LoopClock()


@dataclass(frozen=True)
class LoopResult:
    history: list[dict[str, Any]]
    resumed_from: int  # 0 for a fresh start, else the checkpoint's step
    seconds: float  # training time over every process that worked on the run (resumes included)


class Trainee:
    """The hooks of one kind of training. `model` is the network the loop trains and checkpoints; `iterations` its
    length; `fix` what to change when the loss diverges (named in the error)."""

    model: nn.Module
    iterations: int
    fix: str = "lower train.lr"

    def prepare(self) -> None:
        """On every start, fresh or resumed, before the optimizer is built (reparameterizations, device, which
        parameters train)."""

    def optimizer(self) -> tuple[torch.optim.Optimizer, torch.optim.lr_scheduler.LRScheduler]:
        raise NotImplementedError

    def start(self) -> None:
        """Once, on a fresh start (not on a resume), after the optimizer is built."""

    def train_mode(self) -> None:
        self.model.train()

    def batch(self, gen: torch.Generator) -> Any:
        raise NotImplementedError

    def loss(self, batch: Any, step: int) -> tuple[torch.Tensor, dict[str, Any]]:
        """The total loss of `batch` at `step` (0-based, before the update) and what the hooks and logs need."""
        raise NotImplementedError

    def before_step(self, step: int) -> None:
        """Between backward and the optimizer step."""

    def after_step(self, step: int, logs: dict[str, Any]) -> None:
        """After the optimizer and schedule stepped; `step` counts the updates done."""

    def record(self, step: int, epoch: int, logs: dict[str, Any], lr: float) -> dict[str, Any] | None:
        """The training log record at `step`, or None when none is due."""
        return None

    def period_end(self, step: int) -> bool:
        """Whether an epoch ends at `step`, the last step included (the epoch counter advances; the default: no
        epochs)."""
        return False

    def validate(self, step: int, epoch: int, period_end: bool, logs: dict[str, Any]) -> dict[str, Any] | None:
        """The validation record at `step`, or None when none is due."""
        return None

    def checkpoint_due(self, step: int, epoch: int, period_end: bool) -> bool:
        return step >= self.iterations

    def state_dict(self) -> dict[str, Any]:
        return {}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        pass

    def finish(self) -> None:
        """After the last step."""


def save_atomic(obj: Any, path: Path) -> None:
    """`torch.save` to a temporary file renamed into place: a killed write never leaves a truncated file; a failed
    one leaves no temporary file behind."""
    tmp = path.with_name(path.name + f".tmp-{os.getpid()}")
    try:
        torch.save(obj, tmp)
        os.replace(tmp, path)
    except RuntimeError as exc:  # torch's writer reports a full disk or a file-size limit as a RuntimeError
        tmp.unlink(missing_ok=True)
        first = (str(exc).strip().splitlines() or [""])[0][:200]
        raise OSError(errno.ENOSPC, f"could not be written ({first})", str(path)) from None
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def load_checkpoint(path: Path) -> dict[str, Any]:
    """A checkpoint (tensors and plain containers only: `weights_only=True`, so a crafted pickle runs nothing), or one
    CacheError naming the file and the fix."""
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
        if not isinstance(state, dict) or state.get("format") != CHECKPOINT_FORMAT:
            raise ValueError(f"not a checkpoint of format {CHECKPOINT_FORMAT} (written by another version?)")
        return state
    except Exception as exc:  # noqa: BLE001 - any unreadable checkpoint gets the same actionable message
        first = (str(exc).strip().splitlines() or [""])[0][:300]
        raise CacheError(f"checkpoint {path} is unreadable ({type(exc).__name__}: {first}). Delete it to restart "
                         f"this run from its first step: rm '{path}'") from None


def run_loop(trainee: Trainee, *, seed: int, checkpoint: Path | None, desc: str, progress: bool) -> LoopResult:
    """Train `trainee.model` in place for `trainee.iterations` steps, resuming from `checkpoint` when it exists."""
    trainee.prepare()
    opt, sched = trainee.optimizer()
    gen = torch.Generator().manual_seed(seed)
    step, epoch, history, elapsed = 0, 0, [], 0.0
    if checkpoint is not None and checkpoint.exists():
        state = load_checkpoint(checkpoint)
        trainee.model.load_state_dict(state["model"])
        opt.load_state_dict(state["optimizer"])
        sched.load_state_dict(state["scheduler"])
        gen.set_state(state["batch_rng"])
        torch.set_rng_state(state["torch_rng"])
        trainee.load_state_dict(state["trainee"])
        step, epoch, history, elapsed = state["step"], state["epoch"], state["history"], state["elapsed"]
    else:
        trainee.start()
    resumed_from = step

    def save() -> None:
        save_atomic({"format": CHECKPOINT_FORMAT, "model": trainee.model.state_dict(), "optimizer": opt.state_dict(),
                     "scheduler": sched.state_dict(), "batch_rng": gen.get_state(), "torch_rng": torch.get_rng_state(),
                     "trainee": trainee.state_dict(), "step": step, "epoch": epoch, "history": history,
                     "elapsed": elapsed}, checkpoint)

    bar = tqdm(total=trainee.iterations, initial=step, desc=desc, unit="it", disable=not progress,
               dynamic_ncols=True, leave=False)
    trainee.train_mode()
    t0 = start = time.perf_counter()
    steps_before, events = step, 0.0
    CLOCK.loops += 1
    while step < trainee.iterations:
        batch = trainee.batch(gen)
        total, logs = trainee.loss(batch, step)
        if not torch.isfinite(total):
            losses = {k: round(float(v.detach()), 4) for k, v in logs.get("losses", {}).items()}
            raise FloatingPointError(f"non-finite training loss at step {step}: {losses}; {trainee.fix}")
        opt.zero_grad(set_to_none=True)
        total.backward()
        trainee.before_step(step)
        opt.step()
        sched.step()
        step += 1
        trainee.after_step(step, logs)
        record = trainee.record(step, epoch, logs, sched.get_last_lr()[0])
        if record is not None:
            history.append(record)
        bar.update()
        ended = trainee.period_end(step)
        if ended:
            epoch += 1
        t = time.perf_counter()
        record = trainee.validate(step, epoch, ended, logs)
        if record is not None:
            history.append(record)
            CLOCK.validations += 1
            CLOCK.validation_seconds += time.perf_counter() - t
            events += time.perf_counter() - t
        if checkpoint is not None and trainee.checkpoint_due(step, epoch, ended):
            elapsed, t0 = elapsed + time.perf_counter() - t0, time.perf_counter()
            save()
            CLOCK.checkpoints += 1
            CLOCK.checkpoint_seconds += time.perf_counter() - t0
            events += time.perf_counter() - t0
    bar.close()
    elapsed += time.perf_counter() - t0
    CLOCK.steps += step - steps_before
    CLOCK.step_seconds += time.perf_counter() - start - events
    trainee.finish()
    return LoopResult(history, resumed_from, elapsed)


def iterate_batches(data: dict[str, torch.Tensor], batch_size: int, gen: torch.Generator | None,
               drop_last: bool) -> Iterable[dict[str, torch.Tensor]]:
    """One pass over `data` (a dict of tensors with the samples first) in batches, shuffled by `gen` (None: in
    order); `drop_last` drops an incomplete last batch when there is at least one full one."""
    n = next(iter(data.values())).shape[0]
    order = torch.randperm(n, generator=gen) if gen is not None else torch.arange(n)
    stop = n - n % batch_size if (drop_last and n >= batch_size) else n
    for i in range(0, stop, batch_size):
        idx = order[i:i + batch_size]
        yield {k: v[idx] for k, v in data.items()}
