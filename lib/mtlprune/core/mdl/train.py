"""Multi-domain training through the one loop (`core.loop`): source pretraining, and the joint training in which
every step sees one batch of every domain (all domains trained simultaneously, as in Budget-Aware Pruning). Methods act
through their hooks (`param_groups`, `regularizer`, `after_step`, `finish`); no method name appears here.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F

from ..config import MDLConfig, SourceConfig
from ..loop import Trainee, run_loop
from .methods import MDLMethod
from .model import MultiDomainResNet, normalise_input

Split = tuple[torch.Tensor, torch.Tensor]  # (uint8 images N×3×H×W, labels)


def _batches(data: list[Split], batch_size: int, gen: torch.Generator,
             memory_format: str = "contiguous") -> list[tuple[torch.Tensor, torch.Tensor]]:
    out = []
    for x, y in data:
        idx = torch.randint(len(y), (batch_size,), generator=gen)
        out.append((normalise_input(x[idx], memory_format), y[idx]))
    return out


VAL_POINTS = 20  # validation accuracy is logged this many times over a run (the plateau criterion reads it)


def val_record(model: MultiDomainResNet, val: list[Split], domains: list[int], step: int,
               train_mode: bool, memory_format: str = "contiguous") -> dict[str, Any]:
    """Validation accuracy (%) of every domain at `step` (BatchNorm in eval mode, then back to `train_mode`)."""
    rec = {"step": step, "split": "val",
           **{f"val/{d}": accuracy(model, val[d], d, memory_format=memory_format) for d in domains}}
    model.train(train_mode)
    return rec


class SourceTrainee(Trainee):
    """The single-domain backbone on the source split (ImageNet's role): Adam with a cosine schedule, one batch of
    the source per step, the validation accuracy (with the step's loss) `VAL_POINTS` times, a checkpoint every tenth
    of the run."""

    fix = "lower source.lr (--set source.lr=...)"

    def __init__(self, model: MultiDomainResNet, cfg: SourceConfig, source: Split, val: Split | None) -> None:
        self.model, self.cfg, self.source, self.val = model, cfg, source, val
        self.iterations = cfg.iterations
        self.val_every = max(1, cfg.iterations // VAL_POINTS)
        self.save_every = max(1, cfg.iterations // 10)

    def optimizer(self):
        opt = torch.optim.Adam(self.model.parameters(), lr=self.cfg.lr, weight_decay=self.cfg.weight_decay)
        return opt, torch.optim.lr_scheduler.CosineAnnealingLR(opt, self.cfg.iterations)

    def batch(self, gen):
        ((x, y),) = _batches([self.source], self.cfg.batch_size, gen, self.cfg.memory_format)
        return x, y

    def loss(self, batch, step):
        x, y = batch
        loss = F.cross_entropy(self.model(x, 0), y)
        return loss, {"losses": {0: loss}}

    def validate(self, step, epoch, period_end, logs):
        if self.val is None or not (step % self.val_every == 0 or step == self.iterations):
            return None
        return {**val_record(self.model, [self.val], [0], step, True, self.cfg.memory_format),
                "loss/0": float(logs["losses"][0].detach())}

    def checkpoint_due(self, step, epoch, period_end):
        return step % self.save_every == 0 or step == self.iterations

    def finish(self):
        self.model.eval()


def pretrain_source(cfg: SourceConfig, source: Split, classes: int, seed: int, progress: bool,
                    val: Split | None = None, ckpt: Path | None = None,
                    ) -> tuple[MultiDomainResNet, list[dict[str, Any]]]:
    """The single-domain backbone trained on the source split, and its log: the validation accuracy on `val` (the
    source domain's validation split) `VAL_POINTS` times over the run. With `ckpt`, a killed run resumes."""
    torch.manual_seed(seed)
    model = MultiDomainResNet([classes], cfg.model.widths, cfg.model.blocks)
    result = run_loop(SourceTrainee(model, cfg, source, val), seed=seed, checkpoint=ckpt, desc="source pretraining",
                      progress=progress)
    return model, result.history


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


class JointTrainee(Trainee):
    """A multi-domain method's network(s) on `domains` (indices into the model's domains and into `data`): one batch
    of every domain per step, the mean of their losses plus the method's regulariser, Adam on the method's parameter
    groups with a cosine schedule; a training record every 1/30 of the run, the validation accuracy of every domain
    `VAL_POINTS` times (eval mode: the training numbers do not change), a checkpoint every tenth and at the end."""

    fix = "lower mdl train.lr / train.switch_lr (--set train.lr=...)"

    def __init__(self, model: MultiDomainResNet, method: MDLMethod, data: list[Split], domains: list[int],
                 cfg: MDLConfig, val: list[Split] | None) -> None:
        self.model, self.method, self.data, self.domains, self.cfg, self.val = model, method, data, domains, cfg, val
        self.iterations = cfg.train.iterations
        self.every = max(1, cfg.train.iterations // 30)
        self.save_every = max(1, cfg.train.iterations // 10)
        self.val_every = max(1, cfg.train.iterations // VAL_POINTS)

    def optimizer(self):
        for p in self.model.parameters():
            p.requires_grad_(False)
        groups = self.method.param_groups(self.model)
        for g in groups:
            for p in g["params"]:
                p.requires_grad_(True)
        opt = torch.optim.Adam(groups, lr=self.cfg.train.lr, weight_decay=self.cfg.train.weight_decay)
        return opt, torch.optim.lr_scheduler.CosineAnnealingLR(opt, self.cfg.train.iterations)

    def train_mode(self):
        self.model.train(self.method.bn_train_mode())

    def batch(self, gen):
        return _batches([self.data[d] for d in self.domains], self.cfg.train.batch_size, gen,
                        self.cfg.train.memory_format)

    def loss(self, batch, step):
        losses = {d: F.cross_entropy(self.model(x, d), y) for d, (x, y) in zip(self.domains, batch)}
        reg, scalars = self.method.regularizer(self.model)
        return sum(losses.values()) / len(losses) + reg, {"losses": losses, "scalars": scalars}

    def after_step(self, step, logs):
        self.method.after_step(self.model, logs["scalars"])

    def record(self, step, epoch, logs, lr):
        if not (step % self.every == 0 or step == self.iterations):
            return None
        return {"step": step, **{f"loss/{d}": float(v.detach()) for d, v in logs["losses"].items()}, **logs["scalars"]}

    def validate(self, step, epoch, period_end, logs):
        if self.val is None or not (step % self.val_every == 0 or step == self.iterations):
            return None
        return val_record(self.model, self.val, self.domains, step, self.method.bn_train_mode(),
                          self.cfg.train.memory_format)

    def checkpoint_due(self, step, epoch, period_end):
        return step % self.save_every == 0 or step == self.iterations

    def state_dict(self):
        return {"method": self.method.state_dict()}

    def load_state_dict(self, state):
        self.method.load_state_dict(state["method"])

    def finish(self):
        self.method.finish(self.model)


def train_joint(model: MultiDomainResNet, method: MDLMethod, data: list[Split], domains: list[int], cfg: MDLConfig,
                seed: int, progress: bool, desc: str, ckpt: Path | None = None,
                val: list[Split] | None = None) -> list[dict[str, Any]]:
    """Train `model` on `domains` jointly through the one loop; returns the log. With `ckpt`, a killed run resumes
    from it (the same numbers as an uninterrupted run: the batch generator is in the checkpoint)."""
    return run_loop(JointTrainee(model, method, data, domains, cfg, val), seed=seed, checkpoint=ckpt, desc=desc,
                    progress=progress).history


@torch.no_grad()
def accuracy(model: MultiDomainResNet, split: Split, d: int, batch_size: int = 256,
             memory_format: str = "contiguous") -> float:
    model.eval()
    x, y = split
    correct = 0
    for i in range(0, len(y), batch_size):
        logits = model(normalise_input(x[i:i + batch_size], memory_format), d)
        correct += int((logits.argmax(1) == y[i:i + batch_size]).sum())
    return 100.0 * correct / max(len(y), 1)
