"""Task metrics (streamed over a split) and the aggregate Δ conventions of the study.

Conventions (stated in the book's *Conventions* page):
- seg: `miou` = mean over classes of TP/(TP+FP+FN) from **one global confusion matrix** over all valid pixels of the
  split (classes with TP+FP+FN = 0 are undefined and skipped); `pixacc` = global pixel accuracy. Both in %.
  `miou_tp` is the AdaShare/DiSparse variant (mean over classes with TP > 0 only), reported but never aggregated.
- depth: on pixels with ground truth > 0, pooled over the split: `abs_err` (m), `rel_err` = |d̂-d|/d, and
  `delta1..3` = % of pixels with max(d̂/d, d/d̂) < 1.25, 1.25², 1.25³ (predictions clamped to >= 1e-3 for ratios).
- normal: angle between the unit prediction and the ground truth on valid pixels, pooled over the split:
  `angle_mean`, `angle_median` (degrees; the median from a 0.01° histogram) and `within_11_25`, `within_22_5`,
  `within_30` (% of pixels strictly below the angle).
- Δ_T (AdapMTL): per task, the **sum** over its metrics of the signed relative change vs the dense reference, in %;
  Δ_T is the mean over tasks. Δp (LibMTL): the **mean** within each task, then the mean over tasks. + is better.
"""

from __future__ import annotations

import math

import numpy as np
import torch

from .models.multitask import unit_vectors

NUM_CLASSES = 13

# (metric, +1 if higher is better else -1), in the order of the AdapMTL table; these enter Δ_T and Δp.
METRICS: dict[str, list[tuple[str, int]]] = {
    "seg": [("miou", 1), ("pixacc", 1)],
    "normal": [("angle_mean", -1), ("angle_median", -1), ("within_11_25", 1), ("within_22_5", 1), ("within_30", 1)],
    "depth": [("abs_err", -1), ("rel_err", -1), ("delta1", 1), ("delta2", 1), ("delta3", 1)],
}
_ANGLE_BINS = 18000  # 0.01 degree bins for the streamed median


class TaskMeters:
    """Accumulates sufficient statistics over batches; `compute()` returns {task: {metric: value}}."""

    def __init__(self, tasks: tuple[str, ...] | list[str], num_classes: int = NUM_CLASSES) -> None:
        self.tasks = list(tasks)
        self.num_classes = num_classes
        self.conf = torch.zeros(num_classes, num_classes, dtype=torch.long)
        self.depth = torch.zeros(6, dtype=torch.float64)  # n, abs, rel, d1, d2, d3
        self.angle_hist = torch.zeros(_ANGLE_BINS, dtype=torch.long)
        self.angle = torch.zeros(5, dtype=torch.float64)  # n, sum, <11.25, <22.5, <30

    @torch.no_grad()
    def update(self, preds: dict[str, torch.Tensor], batch: dict[str, torch.Tensor]) -> None:
        if "seg" in preds:
            gt = batch["label"].reshape(-1).cpu()
            pr = preds["seg"].max(1).indices.reshape(-1).cpu()  # = argmax(1) (first maximum), 8x faster on CPU
            keep = gt >= 0
            idx = gt[keep] * self.num_classes + pr[keep]
            self.conf += torch.bincount(idx, minlength=self.num_classes ** 2).reshape(self.num_classes, -1)
        if "depth" in preds:
            gt = batch["depth"].float().cpu()
            pr = preds["depth"].float().cpu()
            valid = gt > 0
            g, p = gt[valid].double(), pr[valid].double()
            ratio = torch.maximum(p.clamp_min(1e-3) / g, g / p.clamp_min(1e-3))
            self.depth += torch.stack([
                torch.tensor(float(g.numel()), dtype=torch.float64), (p - g).abs().sum(), ((p - g).abs() / g).sum(),
                (ratio < 1.25).sum().double(), (ratio < 1.25 ** 2).sum().double(), (ratio < 1.25 ** 3).sum().double(),
            ])
        if "normal" in preds:
            gt = batch["normal"].float().cpu()
            pr = preds["normal"].float().cpu()
            valid = gt.abs().sum(1) > 0
            gtn = unit_vectors(gt)  # = F.normalize(dim=1), without its slow CPU kernel
            prn = unit_vectors(pr)
            cos = (gtn * prn).sum(1)[valid].clamp(-1, 1).double()
            ang = torch.rad2deg(torch.acos(cos))
            bins = (ang / 180.0 * _ANGLE_BINS).long().clamp(0, _ANGLE_BINS - 1)
            self.angle_hist += torch.bincount(bins, minlength=_ANGLE_BINS)
            self.angle += torch.stack([
                torch.tensor(float(ang.numel()), dtype=torch.float64), ang.sum(), (ang < 11.25).sum().double(),
                (ang < 22.5).sum().double(), (ang < 30).sum().double(),
            ])

    def compute(self) -> dict[str, dict[str, float]]:
        out: dict[str, dict[str, float]] = {}
        if "seg" in self.tasks:
            conf = self.conf.double()
            tp = conf.diag()
            union = conf.sum(0) + conf.sum(1) - tp
            defined = union > 0
            iou = tp[defined] / union[defined]
            total = conf.sum()
            out["seg"] = {
                "miou": 100 * float(iou.mean()) if defined.any() else math.nan,
                "pixacc": 100 * float(tp.sum() / total) if total > 0 else math.nan,
                "miou_tp": 100 * float((tp[tp > 0] / union[tp > 0]).mean()) if (tp > 0).any() else 0.0,
            }
        if "depth" in self.tasks:
            n, a, r, d1, d2, d3 = self.depth.tolist()
            out["depth"] = {"abs_err": a / n, "rel_err": r / n, "delta1": 100 * d1 / n, "delta2": 100 * d2 / n,
                            "delta3": 100 * d3 / n} if n else {k: math.nan for k, _ in METRICS["depth"]}
        if "normal" in self.tasks:
            n, s, w1, w2, w3 = self.angle.tolist()
            if n:
                cdf = torch.cumsum(self.angle_hist, 0)
                # the median is the value of rank (n+1)//2 (1-based; torch.median's lower median for even n)
                rank = (int(n) + 1) // 2
                median_bin = int(torch.searchsorted(cdf, torch.tensor(rank, dtype=cdf.dtype)))
                median = (median_bin + 0.5) * 180.0 / _ANGLE_BINS
                out["normal"] = {"angle_mean": s / n, "angle_median": median, "within_11_25": 100 * w1 / n,
                                 "within_22_5": 100 * w2 / n, "within_30": 100 * w3 / n}
            else:
                out["normal"] = {k: math.nan for k, _ in METRICS["normal"]}
        return out


def _rel(value: float, ref: float, sign: int) -> float:
    """Signed relative change in %; undefined (NaN) against a zero reference unless the value is equal too."""
    if ref == 0:
        return 0.0 if value == 0 else math.nan
    return sign * (value - ref) / ref * 100


def _rel_changes(metrics: dict[str, dict[str, float]], reference: dict[str, dict[str, float]]) -> dict[str, list[float]]:
    out = {}
    for task, spec in METRICS.items():
        if task not in metrics or task not in reference:
            continue
        out[task] = [_rel(metrics[task][m], reference[task][m], sign) for m, sign in spec]
    if not out:
        raise ValueError("no task in common between the metrics and the reference")
    return out


def delta_t(metrics: dict[str, dict[str, float]], reference: dict[str, dict[str, float]]) -> dict[str, float]:
    """AdapMTL Δ_T: per task the sum of signed relative changes (%) over its metrics; `mean` over tasks."""
    per_task = {t: float(np.sum(v)) for t, v in _rel_changes(metrics, reference).items()}
    return {**per_task, "mean": float(np.mean(list(per_task.values())))}


def delta_p(metrics: dict[str, dict[str, float]], reference: dict[str, dict[str, float]]) -> dict[str, float]:
    """LibMTL Δp: per task the mean of signed relative changes (%) over its metrics; `mean` over tasks."""
    per_task = {t: float(np.mean(v)) for t, v in _rel_changes(metrics, reference).items()}
    return {**per_task, "mean": float(np.mean(list(per_task.values())))}
