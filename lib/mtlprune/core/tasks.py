"""The task axis: one registered spec per task, read by the model, the losses, the metrics, Δ, augmentation and the
book instead of task names.

A spec says what the task's head predicts (its output channels and the activation applied to them), how it trains
(its loss on valid pixels, `losses`), how it is scored (a streaming meter, its metrics with their signs in table order,
and the primary one the book ranks by), how its ground truth follows a horizontal flip of the image (mirrored, and
optionally a sign per channel: a normal's x component changes sign), and what a constant predictor fitted on the
training split predicts (the collapse baseline, `study.evidence.chance_metrics`). `task_losses` and `TaskMeters` are
what the training loop and the evaluation call: each task's own loss and meter. NYU-v2's three tasks are registered here,
in the order of the AdapMTL table (seg, normal, depth), then Tiny-Taskonomy's 17-class segmentation, keypoints and
edges (it shares normal and depth).
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import Callable

import torch

from . import losses
from .data.taskonomy import NUM_SEG_CLASSES
from .metrics import METRICS, NUM_CLASSES, DepthMeter, L1Meter, Meter, NormalMeter, SegMeter, unit_vectors
from .registry import Registry

Constant = Callable[[int, int, int], torch.Tensor]  # (batch, height, width) -> a prediction


@dataclass(frozen=True)
class TaskSpec:
    name: str  # the head and component name
    title: str  # how the book names it
    target: str  # the batch key of its ground truth
    channels: int  # the head's output channels
    metrics: tuple[tuple[str, int], ...]  # (metric, +1 if higher is better else -1), in table order
    primary: str  # the metric the book ranks and checks collapse by
    loss: Callable[[torch.Tensor, dict[str, torch.Tensor]], torch.Tensor]
    meter: Callable[[], Meter]
    constant: Callable[[dict[str, torch.Tensor]], Constant]  # fitted on the training split
    colour: str  # the component's fixed colour in every figure
    activation: Callable[[torch.Tensor], torch.Tensor] | None = None  # applied to the head's (upsampled) output
    flip_sign: tuple[float, ...] | None = None  # per-channel sign of the target under a horizontal flip


TASKS: Registry[TaskSpec] = Registry("task")


def register(spec: TaskSpec) -> TaskSpec:
    """Add a task to the axis; its metrics join `metrics.METRICS`, so Δ_T and Δp count it."""
    if dict(spec.metrics) != dict(METRICS.get(spec.name, spec.metrics)) or spec.primary not in dict(spec.metrics):
        raise ValueError(f"task {spec.name!r}: its metrics must match metrics.METRICS and contain its primary one")
    TASKS.register(spec.name)(spec)
    METRICS.setdefault(spec.name, list(spec.metrics))
    return spec


def task_spec(name: str) -> TaskSpec:
    return TASKS.get(name)


def _majority_class(train: dict[str, torch.Tensor], key: str = "label", classes: int = NUM_CLASSES) -> Constant:
    labels = train[key][train[key] >= 0]
    majority = int(torch.bincount(labels.reshape(-1)).argmax())

    def predict(b: int, h: int, w: int) -> torch.Tensor:
        seg = torch.zeros(b, classes, h, w)
        seg[:, majority] = 1.0
        return seg
    return predict


def _mean_depth(train: dict[str, torch.Tensor]) -> Constant:
    depth = float(train["depth"][train["depth"] > 0].mean())
    return lambda b, h, w: torch.full((b, 1, h, w), depth)


def _mean_normal(train: dict[str, torch.Tensor]) -> Constant:
    normal = train["normal"].mean(dim=(0, 2, 3)).reshape(1, 3, 1, 1)
    return lambda b, h, w: normal.expand(b, 3, h, w)


register(TaskSpec("seg", "Semantic segmentation", "label", NUM_CLASSES, tuple(METRICS["seg"]), "miou",
                  losses.seg_loss, lambda: SegMeter(NUM_CLASSES), _majority_class, "#e69f00"))
register(TaskSpec("normal", "Surface normals", "normal", 3, tuple(METRICS["normal"]), "angle_mean",
                  losses.normal_loss, NormalMeter, _mean_normal, "#009e73", activation=unit_vectors,
                  flip_sign=(-1.0, 1.0, 1.0)))
register(TaskSpec("depth", "Depth", "depth", 1, tuple(METRICS["depth"]), "abs_err", losses.depth_loss, DepthMeter,
                  _mean_depth, "#0072b2"))


def _mean_map(key: str) -> Callable[[dict[str, torch.Tensor]], Constant]:
    def fit(train: dict[str, torch.Tensor]) -> Constant:
        value = float(train[key].mean())
        return lambda b, h, w: torch.full((b, 1, h, w), value)
    return fit


# Tiny-Taskonomy's two further tasks and its 17-class segmentation (`data.taskonomy`); normal and depth are shared with
# NYU-v2 (the same heads, losses and metrics: the loader decodes them to the same conventions).
register(TaskSpec("semseg", "Semantic segmentation (17 classes)", "semseg", NUM_SEG_CLASSES, (("miou", 1), ("pixacc", 1)),
                  "miou", functools.partial(losses.seg_loss, key="semseg", class_weights="semseg_prior"),
                  functools.partial(SegMeter, NUM_SEG_CLASSES, "semseg"),
                  functools.partial(_majority_class, key="semseg", classes=NUM_SEG_CLASSES), "#d55e00"))
register(TaskSpec("keypoints", "2D keypoints", "keypoints", 1, (("abs_err", -1),), "abs_err",
                  functools.partial(losses.l1_loss, key="keypoints"), functools.partial(L1Meter, "keypoints"),
                  _mean_map("keypoints"), "#cc79a7"))
register(TaskSpec("edges", "Texture edges", "edges", 1, (("abs_err", -1),), "abs_err",
                  functools.partial(losses.l1_loss, key="edges"), functools.partial(L1Meter, "edges"),
                  _mean_map("edges"), "#56b4e9"))


def primary() -> dict[str, str]:
    """Every registered task's primary metric."""
    return {t: TASKS.get(t).primary for t in METRICS if t in TASKS}


def task_losses(preds: dict[str, torch.Tensor], batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Each task's loss, as its spec names it (the functions of `losses`)."""
    return {task: task_spec(task).loss(pred, batch) for task, pred in preds.items()}


class TaskMeters:
    """Every task's meter (its spec's); `update(preds, batch)` feeds each task present in `preds`, `compute()` returns
    {task: {metric: value}}."""

    def __init__(self, tasks: tuple[str, ...] | list[str]) -> None:
        self.tasks = list(tasks)
        self.meters = {t: task_spec(t).meter() for t in self.tasks}

    @torch.no_grad()
    def update(self, preds: dict[str, torch.Tensor], batch: dict[str, torch.Tensor]) -> None:
        for task, meter in self.meters.items():
            if task in preds:
                meter.update(preds[task], batch)

    def compute(self) -> dict[str, dict[str, float]]:
        return {t: m.compute() for t, m in self.meters.items()}
