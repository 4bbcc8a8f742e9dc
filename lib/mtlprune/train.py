"""The one training loop: Adam + LR schedule, seeded, tqdm progress, per-epoch validation and resumable checkpoints.

Methods never appear here by name: a pruning strategy acts through its hooks (`pruning.base`), a loss weighting through
`weighting(losses, step)`. Device is chosen automatically (CUDA with bf16 autocast when present, CPU otherwise).
"""

from __future__ import annotations

import math
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterator

import torch
from torch import nn
from tqdm import tqdm  # plain text bars: no widget output in executed notebooks

from .config import TrainConfig
from .errors import CacheError
from .heap import keep_freed_memory
from .losses import task_losses
from .metrics import TaskMeters
from .pruning import PruningStrategy, TrainContext
from .weighting import Weighting


@dataclass(frozen=True)
class FitResult:
    history: list[dict[str, Any]]
    resumed_from: int  # 0 for a fresh start, else the checkpoint's step
    seconds: float  # training time over every process that worked on the run (resumes included)


@dataclass(frozen=True)
class Runtime:
    """How to run, never what is run: none of this enters a run id."""

    device: str = "auto"  # auto | cpu | cuda
    progress: bool = True
    checkpoint_every: int = 1  # epochs between checkpoints (the final step is always checkpointed)


def pick_device(preference: str = "auto") -> torch.device:
    if preference not in ("auto", "cpu", "cuda"):
        raise ValueError(f"unknown device {preference!r}; valid: auto, cpu, cuda")
    if preference == "cuda" and not torch.cuda.is_available():
        raise ValueError("device 'cuda' requested but no CUDA device is available; use --device auto or cpu")
    if preference == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(preference)


def seed_everything(seed: int) -> None:
    """Seed every generator; on CUDA also ask for deterministic kernels (cuDNN without autotuning, cuBLAS with a
    fixed workspace), so the same seed gives the same numbers there too (a warning names any op without one)."""
    torch.manual_seed(seed)
    if torch.cuda.is_available():
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
        torch.backends.cudnn.benchmark = False
        torch.backends.cudnn.deterministic = True
        torch.use_deterministic_algorithms(True, warn_only=True)
        torch.cuda.manual_seed_all(seed)


def augment(batch: dict[str, torch.Tensor], gen: torch.Generator) -> dict[str, torch.Tensor]:
    """Random horizontal flip of half the samples: the image and every task's ground truth in the batch are mirrored,
    and a target whose task spec has a `flip_sign` (a normal map's x component) changes sign per channel. Returns new
    tensors (the input batch is untouched)."""
    from .tasks import TASKS

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


def iterate_batches(data: dict[str, torch.Tensor], batch_size: int, gen: torch.Generator | None,
                    drop_last: bool) -> Iterator[dict[str, torch.Tensor]]:
    n = data["image"].shape[0]
    order = torch.randperm(n, generator=gen) if gen is not None else torch.arange(n)
    stop = n - n % batch_size if (drop_last and n >= batch_size) else n
    for i in range(0, stop, batch_size):
        idx = order[i:i + batch_size]
        yield {k: v[idx] for k, v in data.items()}


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


def save_atomic(obj: Any, path: Path) -> None:
    tmp = path.with_name(path.name + f".tmp-{os.getpid()}")
    torch.save(obj, tmp)
    os.replace(tmp, path)


def load_checkpoint(path: Path) -> dict[str, Any]:
    try:
        return torch.load(path, map_location="cpu", weights_only=False)
    except Exception as exc:  # noqa: BLE001 - any unreadable checkpoint gets the same actionable message
        raise CacheError(f"checkpoint {path} is unreadable ({type(exc).__name__}: {exc}). Delete it to restart this "
                         f"run from its first step: rm '{path}'") from None


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


def fit(model: nn.Module, weighting: Weighting, strategy: PruningStrategy, ctx: TrainContext,
        train_data: dict[str, torch.Tensor], val_data: dict[str, torch.Tensor], cfg: TrainConfig, *, seed: int,
        flip: bool, ckpt_path: Path, runtime: Runtime, desc: str = "train",
        snapshots: tuple[int, ...] = (), monitor: Callable[[], dict[str, float]] | None = None,
        ) -> FitResult:
    """Train in place until `cfg.iterations`; resumes from `ckpt_path` if present.

    `monitor()` adds scalars (e.g. per-component sparsity) to every logged record.
    `snapshots`: steps at which the model weights are also saved to `snapshots/step_<k>.pt` next to the checkpoint.
    """
    keep_freed_memory()  # no page faults for each step's multi-MB buffers (`heap`)
    strategy.install(model)
    device = ctx.device
    # what `install` added (masks, thresholds) joins the model's device and layout; parameters keep their identity
    model.to(device, memory_format=memory_format(cfg))
    tasks = tuple(model.heads.keys())
    opt = build_optimizer(model, weighting, strategy, cfg)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: lr_factor(cfg, s))
    gen = torch.Generator().manual_seed(seed)
    step, epoch, history, elapsed = 0, 0, [], 0.0

    if ckpt_path.exists():
        state = load_checkpoint(ckpt_path)
        model.load_state_dict(state["model"])
        weighting.load_state_dict(state["weighting"])
        strategy.load_state_dict(state["strategy"])
        opt.load_state_dict(state["optimizer"])
        sched.load_state_dict(state["scheduler"])
        gen.set_state(state["batch_rng"])
        if ctx.batch_rng is not None and "strategy_batch_rng" in state:
            ctx.batch_rng.set_state(state["strategy_batch_rng"])
        torch.set_rng_state(state["torch_rng"])
        step, epoch, history, elapsed = state["step"], state["epoch"], state["history"], state["elapsed"]
    else:
        strategy.setup(ctx)
    snap_dir = ckpt_path.parent / "snapshots"

    def snapshot() -> None:
        if step in snapshots:
            snap_dir.mkdir(exist_ok=True)
            save_atomic({k: v.detach().cpu() for k, v in model.state_dict().items()}, snap_dir / f"step_{step}.pt")

    if step == 0:
        snapshot()

    def checkpoint() -> None:
        save_atomic({"model": model.state_dict(), "weighting": weighting.state_dict(),
                     "strategy": strategy.state_dict(), "optimizer": opt.state_dict(), "scheduler": sched.state_dict(),
                     "batch_rng": gen.get_state(), "torch_rng": torch.get_rng_state(), "step": step, "epoch": epoch,
                     **({"strategy_batch_rng": ctx.batch_rng.get_state()} if ctx.batch_rng is not None else {}),
                     "history": history, "elapsed": elapsed}, ckpt_path)

    resumed_from = step
    log_every = max(1, cfg.iterations // 25)
    bar = tqdm(total=cfg.iterations, initial=step, desc=desc, unit="it", disable=not runtime.progress,
               dynamic_ncols=True, leave=False)
    model.train()
    running: dict[str, float] = {}
    n_running = 0
    t0 = time.perf_counter()
    while step < cfg.iterations:
        for batch in iterate_batches(train_data, cfg.batch_size, gen, drop_last=True):
            if flip:
                batch = augment(batch, gen)
            batch = {k: v.to(device, non_blocking=True) for k, v in batch.items()}
            with step_autocast(cfg, device):
                preds = model(batch["image"])
            losses = task_losses(preds, batch)
            total, weights = weighting(losses, step)
            if not torch.isfinite(total):
                raise FloatingPointError(f"non-finite training loss at step {step}: "
                                         f"{ {t: float(v) for t, v in losses.items()} }; lower train.lr")
            opt.zero_grad(set_to_none=True)
            total.backward()
            strategy.before_step(ctx, step)
            opt.step()
            sched.step()
            step += 1
            strategy.after_step(ctx, step)
            snapshot()
            for t, v in losses.items():
                running[t] = running.get(t, 0.0) + float(v.detach())
            n_running += 1
            if step % log_every == 0 or step == cfg.iterations:
                rec = {"step": step, "epoch": epoch, "split": "train", "lr": sched.get_last_lr()[0],
                       **{f"loss/{t}": v / n_running for t, v in running.items()},
                       **{f"weight/{t}": w for t, w in weights.items()}, **strategy.scalars(),
                       **(monitor() if monitor else {})}
                history.append(rec)
                bar.set_postfix({t: f"{v / n_running:.3f}" for t, v in running.items()}, refresh=False)
                running, n_running = {}, 0
            bar.update()
            if step >= cfg.iterations:
                break
        epoch += 1
        metrics, val_losses = evaluate(model, val_data, tasks, device, cfg)
        history.append({"step": step, "epoch": epoch, "split": "val", **{f"loss/{t}": v for t, v in val_losses.items()},
                        **{f"{t}/{m}": v for t, ms in metrics.items() for m, v in ms.items()}})
        elapsed += time.perf_counter() - t0
        t0 = time.perf_counter()
        if step >= cfg.iterations or epoch % runtime.checkpoint_every == 0:
            checkpoint()
    bar.close()
    return FitResult(history, resumed_from, elapsed)
