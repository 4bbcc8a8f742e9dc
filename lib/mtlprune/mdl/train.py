"""Training for the multi-domain runs: source pretraining, and the joint loop in which every step sees one batch of
every domain (all domains trained simultaneously, as in Budget-Aware Pruning). Methods act through their hooks
(`param_groups`, `regularizer`, `after_step`, `finish`); no method name appears here.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from tqdm import tqdm

from ..train import load_checkpoint, save_atomic
from .config import MDLConfig, SourceConfig
from .methods import MDLMethod
from .model import MultiDomainResNet, normalise_input

Split = tuple[torch.Tensor, torch.Tensor]  # (uint8 images N×3×H×W, labels)


def _batches(data: list[Split], batch_size: int, gen: torch.Generator) -> list[tuple[torch.Tensor, torch.Tensor]]:
    out = []
    for x, y in data:
        idx = torch.randint(len(y), (batch_size,), generator=gen)
        out.append((normalise_input(x[idx]), y[idx]))
    return out


def pretrain_source(cfg: SourceConfig, source: Split, classes: int, seed: int, progress: bool,
                    val: Split | None = None) -> tuple[MultiDomainResNet, list[dict[str, Any]]]:
    """The single-domain backbone trained on the source split (ImageNet's role), and its log: the validation accuracy
    on `val` (the source domain's validation split) `VAL_POINTS` times over the run."""
    torch.manual_seed(seed)
    model = MultiDomainResNet([classes], cfg.model.widths, cfg.model.blocks)
    opt = torch.optim.Adam(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, cfg.iterations)
    gen = torch.Generator().manual_seed(seed)
    model.train()
    history: list[dict[str, Any]] = []
    val_every = max(1, cfg.iterations // VAL_POINTS)
    for step in tqdm(range(1, cfg.iterations + 1), desc="source pretraining", disable=not progress, leave=False):
        ((x, y),) = _batches([source], cfg.batch_size, gen)
        loss = F.cross_entropy(model(x, 0), y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        sched.step()
        if val is not None and (step % val_every == 0 or step == cfg.iterations):
            history.append({**val_record(model, [val], [0], step, True), "loss/0": float(loss.detach())})
    return model.eval(), history


def from_source(source: MultiDomainResNet, classes: list[int], cfg: MDLConfig, granularity: str | None,
                ) -> MultiDomainResNet:
    """A multi-domain network whose shared convolutions and every domain's BatchNorms start from the source
    backbone; heads are new (seeded by the caller)."""
    model = MultiDomainResNet(classes, cfg.source.model.widths, cfg.source.model.blocks, granularity,
                              cfg.method.switch_init)
    src = source.state_dict()
    own = model.state_dict()
    for key in own:
        if key.startswith("heads.") or "switches" in key:
            continue
        if ".bns." in key:  # every domain's BN starts from the source BN (index 0)
            head, tail = key.split(".bns.", 1)
            key_src = f"{head}.bns.0.{tail.split('.', 1)[1]}"
        else:
            key_src = key
        own[key] = src[key_src].clone()
    model.load_state_dict(own)
    init_switches(model, cfg.method.switch_init)
    return model


@torch.no_grad()
def init_switches(model: MultiDomainResNet, level: float) -> None:
    """Latent switches start on, ordered by the source filter's importance (‖conv1 filter or slice‖ · |BN γ|): a
    uniform push then turns the weakest off first. Values are ranks mapped into [0.5, 1.5] · `level`, the same for
    every domain."""
    for block in model.switched():
        w = block.conv1.weight
        gamma = block.bn1.bns[0].weight.abs()
        score = (w.flatten(1).norm(dim=1) * gamma if block.switches.dim() == 2
                 else w.flatten(2).norm(dim=2) * gamma[:, None])
        ranks = score.flatten().argsort().argsort().float() / max(score.numel() - 1, 1)
        block.switches.copy_((level * (0.5 + ranks)).reshape(score.shape).expand_as(block.switches))


VAL_POINTS = 20  # validation accuracy is logged this many times over a run (the plateau criterion reads it)


def val_record(model: MultiDomainResNet, val: list[Split], domains: list[int], step: int,
               train_mode: bool) -> dict[str, Any]:
    """Validation accuracy (%) of every domain at `step` (BatchNorm in eval mode, then back to `train_mode`)."""
    rec = {"step": step, "split": "val", **{f"val/{d}": accuracy(model, val[d], d) for d in domains}}
    model.train(train_mode)
    return rec


def train_joint(model: MultiDomainResNet, method: MDLMethod, data: list[Split], domains: list[int], cfg: MDLConfig,
                seed: int, progress: bool, desc: str, ckpt: Path | None = None,
                val: list[Split] | None = None) -> list[dict[str, Any]]:
    """Train `model` on `domains` (indices into the model's domains and into `data`) jointly; returns the log, with
    the validation accuracy of every domain `VAL_POINTS` times over the run when `val` is given (eval mode: the
    training numbers do not change). With `ckpt`, the state is saved every tenth of the run and at its end, and a
    killed run resumes from it (the same numbers as an uninterrupted run: the batch generator is in the checkpoint)."""
    for p in model.parameters():
        p.requires_grad_(False)
    groups = method.param_groups(model)
    for g in groups:
        for p in g["params"]:
            p.requires_grad_(True)
    opt = torch.optim.Adam(groups, lr=cfg.train.lr, weight_decay=cfg.train.weight_decay)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, cfg.train.iterations)
    gen = torch.Generator().manual_seed(seed)
    model.train(method.bn_train_mode())
    history, every, start = [], max(1, cfg.train.iterations // 30), 1
    save_every = max(1, cfg.train.iterations // 10)
    val_every = max(1, cfg.train.iterations // VAL_POINTS)
    if ckpt is not None and ckpt.exists():
        state = load_checkpoint(ckpt)
        model.load_state_dict(state["model"])
        opt.load_state_dict(state["optimizer"])
        sched.load_state_dict(state["scheduler"])
        gen.set_state(state["batch_rng"])
        method.load_state_dict(state["method"])
        history, start = state["history"], state["step"] + 1

    def checkpoint(step: int) -> None:
        if ckpt is not None:
            save_atomic({"model": model.state_dict(), "optimizer": opt.state_dict(), "scheduler": sched.state_dict(),
                         "batch_rng": gen.get_state(), "method": method.state_dict(), "step": step,
                         "history": history}, ckpt)

    for step in tqdm(range(start, cfg.train.iterations + 1), desc=desc, disable=not progress, leave=False,
                     initial=start - 1, total=cfg.train.iterations):
        losses = {}
        for d, (x, y) in zip(domains, _batches([data[d] for d in domains], cfg.train.batch_size, gen)):
            losses[d] = F.cross_entropy(model(x, d), y)
        reg, scalars = method.regularizer(model)
        total = sum(losses.values()) / len(losses) + reg
        if not torch.isfinite(total):
            raise FloatingPointError(f"non-finite loss at step {step}; lower mdl train.lr")
        opt.zero_grad(set_to_none=True)
        total.backward()
        opt.step()
        sched.step()
        method.after_step(model, scalars)
        if step % every == 0 or step == cfg.train.iterations:
            history.append({"step": step, **{f"loss/{d}": float(v.detach()) for d, v in losses.items()}, **scalars})
        if val is not None and (step % val_every == 0 or step == cfg.train.iterations):
            history.append(val_record(model, val, domains, step, method.bn_train_mode()))
        if step % save_every == 0 or step == cfg.train.iterations:
            checkpoint(step)
    method.finish(model)
    return history


@torch.no_grad()
def accuracy(model: MultiDomainResNet, split: Split, d: int, batch_size: int = 256) -> float:
    model.eval()
    x, y = split
    correct = 0
    for i in range(0, len(y), batch_size):
        correct += int((model(normalise_input(x[i:i + batch_size]), d).argmax(1) == y[i:i + batch_size]).sum())
    return 100.0 * correct / max(len(y), 1)
