"""Multi-task training through the one loop (`loop`): the trainee of a multi-task net (Adam + LR schedule, epochs
over the training split with random flips, per-epoch validation), evaluation, precision and memory layout.

Methods never appear here by name: a pruning strategy acts through its hooks (`pruning.base`), a loss weighting through
`weighting(losses, step)`, a task through its spec (`tasks`).
"""

from __future__ import annotations

import math
import time
from pathlib import Path
from typing import Any, Callable

import torch
from torch import nn

from .config import TrainConfig
from .heap import keep_freed_memory
from .loop import CLOCK, LoopResult, Trainee, iterate_batches, run_loop, save_atomic
from .pruning import PruningStrategy, TrainContext
from .runtime import Runtime
from .tasks import TASKS, TaskMeters, task_losses
from .weighting import Weighting

__all__ = ["augment", "build_optimizer", "evaluate", "fit", "iterate_batches", "lr_factor", "memory_format",
           "step_autocast", "MultiTaskTrainee"]


def augment(batch: dict[str, torch.Tensor], gen: torch.Generator) -> dict[str, torch.Tensor]:
    """Random horizontal flip of half the samples: the image and every task's ground truth in the batch are mirrored,
    and a target whose task spec has a `flip_sign` (a normal map's x component) changes sign per channel. Returns new
    tensors (the input batch is untouched)."""
    flip = torch.rand(batch["image"].shape[0], generator=gen) < 0.5
    if not flip.any():
        return batch
    specs = [TASKS.get(t) for t in TASKS.names()]
    signs = {s.target: s.flip_sign for s in specs if s.target in batch}
    out = {}
    for key in ["image", *signs]:
        v = batch[key]
        where = flip.view(-1, *([1] * (v.dim() - 1)))
        out[key] = torch.where(where, v.flip(-1), v)
    for key, flip_sign in signs.items():
        if flip_sign is not None:
            sign = torch.ones(flip.shape[0], len(flip_sign), 1, 1)
            sign[flip] = torch.tensor(flip_sign).view(-1, 1, 1)
            out[key] = out[key] * sign
    return {**batch, **out}


PRECISIONS = ("float32", "bf16")


def step_autocast(cfg: TrainConfig, device: torch.device):
    """The run's precision (`train.precision`, part of the run id): bf16 autocast on CPU or CUDA, or plain float32.
    Losses and metrics are always taken in float32."""
    return torch.autocast(device.type, dtype=torch.bfloat16, enabled=cfg.precision == "bf16")


def memory_format(cfg: TrainConfig) -> torch.memory_format:
    """`train.memory_format` as torch's: channels_last runs the convolutions without layout reorders on CPU (about 8 %
    faster per quick step here, `benchmarks/step_profile.py`) and on CUDA's tensor cores."""
    return torch.channels_last if cfg.memory_format == "channels_last" else torch.contiguous_format


@torch.inference_mode()
def evaluate(model: nn.Module, data: dict[str, torch.Tensor], tasks, device: torch.device,
             cfg: TrainConfig) -> tuple[dict[str, dict[str, float]], dict[str, float]]:
    """Metrics and mean losses of `model` over a whole split (BatchNorm in eval mode), in the run's precision and
    layout (`cfg.eval_batch_size`, `precision`, `memory_format`: the layout changes rounding, so a model is always
    evaluated in its run's)."""
    was_training = model.training
    model.to(memory_format=memory_format(cfg))
    model.eval()
    meters = TaskMeters(tasks)
    loss_sum = {t: 0.0 for t in tasks}
    n = 0
    for batch in iterate_batches(data, cfg.eval_batch_size, None, drop_last=False):
        batch = {k: v.to(device, non_blocking=True) for k, v in batch.items()}
        with step_autocast(cfg, device):
            preds = model(batch["image"])
        losses = task_losses(preds, batch)
        bs = batch["image"].shape[0]
        for t in tasks:
            loss_sum[t] += float(losses[t]) * bs
        n += bs
        meters.update(preds, batch)
    model.train(was_training)
    return meters.compute(), {t: v / max(n, 1) for t, v in loss_sum.items()}


def lr_factor(cfg: TrainConfig, step: int) -> float:
    if cfg.lr_schedule == "constant":
        return 1.0
    if cfg.lr_schedule == "cosine":
        return 0.5 * (1 + math.cos(math.pi * min(step, cfg.iterations) / cfg.iterations))
    if cfg.lr_schedule == "step":
        every = max(1, int(round(cfg.lr_step * cfg.iterations)))
        return cfg.lr_gamma ** (step // every)
    raise ValueError(f"unknown lr_schedule {cfg.lr_schedule!r}; valid: step, cosine, constant")


def build_optimizer(model: nn.Module, weighting: Weighting, strategy: PruningStrategy,
                    cfg: TrainConfig) -> torch.optim.Adam:
    """Adam over the model, the weighting and the strategy's parameters; a strategy's own groups (e.g. thresholds with
    their own learning rate) leave the default group."""
    groups = strategy.param_groups(model, cfg)
    own = {id(p) for g in groups for p in g["params"]}
    params = [p for p in [*model.parameters(), *weighting.parameters(), *strategy.extra_parameters()]
              if id(p) not in own]
    # fused: one kernel over every parameter (4x faster than the per-tensor loop on CPU; the same update rule)
    return torch.optim.Adam([{"params": params}, *groups], lr=cfg.lr, betas=cfg.betas, weight_decay=cfg.weight_decay,
                            fused=True)


class MultiTaskTrainee(Trainee):
    """A multi-task net under a loss weighting and a pruning strategy: epochs over the training split (shuffled and
    flipped by the loop's batch generator), a training record every 1/25 of the run (mean losses since the last one,
    task weights, the strategy's scalars and `monitor()`), validation at every epoch's end, a checkpoint every
    `checkpoint_every` epochs and at the end, and weight snapshots at `snapshots` steps (LTH's rewinding points)."""

    def __init__(self, model: nn.Module, weighting: Weighting, strategy: PruningStrategy, ctx: TrainContext,
                 train_data: dict[str, torch.Tensor], val_data: dict[str, torch.Tensor], cfg: TrainConfig, *,
                 flip: bool, checkpoint_every: int = 1, snapshots: tuple[int, ...] = (),
                 snapshot_dir: Path | None = None, monitor: Callable[[], dict[str, float]] | None = None) -> None:
        self.model, self.weighting, self.strategy, self.ctx = model, weighting, strategy, ctx
        self.train_data, self.val_data, self.cfg, self.flip = train_data, val_data, cfg, flip
        self.iterations, self.checkpoint_every = cfg.iterations, checkpoint_every
        self.snapshots, self.snapshot_dir, self.monitor = snapshots, snapshot_dir, monitor
        self.periodic = strategy.updates(cfg.iterations) is not None  # mask updates timed apart (`runs.cost`)
        self.device = ctx.device
        self.tasks = tuple(model.heads.keys())
        self.log_every = max(1, cfg.iterations // 25)
        n = train_data["image"].shape[0]
        stop = n - n % cfg.batch_size if n >= cfg.batch_size else n
        self.per_epoch = len(range(0, stop, cfg.batch_size))  # batches of one epoch (`iterate_batches`, drop_last)
        self.epoch_batches: Any = None
        self.drawn = 0
        self.running: dict[str, float] = {}
        self.n_running = 0

    def prepare(self) -> None:
        keep_freed_memory()  # no page faults for each step's multi-MB buffers (`heap`)
        self.strategy.install(self.model)
        # what `install` added (masks, thresholds) joins the model's device and layout; parameters keep their identity
        self.model.to(self.device, memory_format=memory_format(self.cfg))

    def optimizer(self):
        opt = build_optimizer(self.model, self.weighting, self.strategy, self.cfg)
        return opt, torch.optim.lr_scheduler.LambdaLR(opt, lambda s: lr_factor(self.cfg, s))

    def start(self) -> None:
        self.strategy.setup(self.ctx)
        self._snapshot(0)

    def _snapshot(self, step: int) -> None:
        if step in self.snapshots and self.snapshot_dir is not None:
            self.snapshot_dir.mkdir(exist_ok=True)
            save_atomic({k: v.detach().cpu() for k, v in self.model.state_dict().items()},
                        self.snapshot_dir / f"step_{step}.pt")

    def batch(self, gen):
        if self.epoch_batches is None:
            self.epoch_batches, self.drawn = iterate_batches(self.train_data, self.cfg.batch_size, gen, True), 0
        batch = next(self.epoch_batches)
        self.drawn += 1
        if self.flip:
            batch = augment(batch, gen)
        return {k: v.to(self.device, non_blocking=True) for k, v in batch.items()}

    def loss(self, batch, step):
        with step_autocast(self.cfg, self.device):
            preds = self.model(batch["image"])
        losses = task_losses(preds, batch)
        total, weights = self.weighting(losses, step)
        return total, {"losses": losses, "weights": weights}

    def before_step(self, step):
        self.strategy.before_step(self.ctx, step)

    def after_step(self, step, logs):
        if self.periodic:  # its mask updates are priced apart from the steps (`runs.cost`)
            start = time.perf_counter()
            self.strategy.after_step(self.ctx, step)
            CLOCK.update_seconds += time.perf_counter() - start
        else:
            self.strategy.after_step(self.ctx, step)
        self._snapshot(step)
        for t, v in logs["losses"].items():
            self.running[t] = self.running.get(t, 0.0) + float(v.detach())
        self.n_running += 1

    def record(self, step, epoch, logs, lr):
        if not (step % self.log_every == 0 or step == self.iterations):
            return None
        rec = {"step": step, "epoch": epoch, "split": "train", "lr": lr,
               **{f"loss/{t}": v / self.n_running for t, v in self.running.items()},
               **{f"weight/{t}": w for t, w in logs["weights"].items()}, **self.strategy.scalars(),
               **(self.monitor() if self.monitor else {})}
        self.running, self.n_running = {}, 0
        return rec

    def period_end(self, step):
        if self.drawn == self.per_epoch or step >= self.iterations:
            self.epoch_batches = None  # the next batch starts a new epoch (a new permutation)
            return True
        return False

    def validate(self, step, epoch, period_end, logs):
        if not period_end:
            return None
        metrics, val_losses = evaluate(self.model, self.val_data, self.tasks, self.device, self.cfg)
        return {"step": step, "epoch": epoch, "split": "val", **{f"loss/{t}": v for t, v in val_losses.items()},
                **{f"{t}/{m}": v for t, ms in metrics.items() for m, v in ms.items()}}

    def checkpoint_due(self, step, epoch, period_end):
        return period_end and (step >= self.iterations or epoch % self.checkpoint_every == 0)

    def state_dict(self):
        batch_rng = self.ctx.batch_rng
        return {"weighting": self.weighting.state_dict(), "strategy": self.strategy.state_dict(),
                **({"strategy_batch_rng": batch_rng.get_state()} if batch_rng is not None else {})}

    def load_state_dict(self, state):
        self.weighting.load_state_dict(state["weighting"])
        self.strategy.load_state_dict(state["strategy"])
        if self.ctx.batch_rng is not None and "strategy_batch_rng" in state:
            self.ctx.batch_rng.set_state(state["strategy_batch_rng"])


def fit(model: nn.Module, weighting: Weighting, strategy: PruningStrategy, ctx: TrainContext,
        train_data: dict[str, torch.Tensor], val_data: dict[str, torch.Tensor], cfg: TrainConfig, *, seed: int,
        flip: bool, ckpt_path: Path, runtime: Runtime, desc: str = "train",
        snapshots: tuple[int, ...] = (), monitor: Callable[[], dict[str, float]] | None = None) -> LoopResult:
    """Train in place until `cfg.iterations` through the one loop; resumes from `ckpt_path` if present.

    `monitor()` adds scalars (e.g. per-component sparsity) to every logged record.
    `snapshots`: steps at which the model weights are also saved to `snapshots/step_<k>.pt` next to the checkpoint.
    """
    trainee = MultiTaskTrainee(model, weighting, strategy, ctx, train_data, val_data, cfg, flip=flip,
                               checkpoint_every=runtime.checkpoint_every, snapshots=snapshots,
                               snapshot_dir=ckpt_path.parent / "snapshots", monitor=monitor)
    return run_loop(trainee, seed=seed, checkpoint=ckpt_path, desc=desc, progress=runtime.progress)
