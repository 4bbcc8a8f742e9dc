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
- keypoints, edges (Tiny-Taskonomy): `abs_err` = mean absolute error over every pixel, in the standardised units of
  the loader (`data.taskonomy`). semseg (17 classes) uses seg's metrics.
- Δ_T (AdapMTL): per task, the **sum** over its metrics of the signed relative change vs the dense reference, in %;
  Δ_T is the mean over tasks. Δp (LibMTL): the **mean** within each task, then the mean over tasks. + is better.
"""

from __future__ import annotations

import math

import numpy as np
import torch

NUM_CLASSES = 13

# (metric, +1 if higher is better else -1), in the order of the AdapMTL table; these enter Δ_T and Δp. One entry per
# registered task (`tasks`): NYU-v2's three, in this order.
METRICS: dict[str, list[tuple[str, int]]] = {
    "seg": [("miou", 1), ("pixacc", 1)],
    "normal": [("angle_mean", -1), ("angle_median", -1), ("within_11_25", 1), ("within_22_5", 1), ("within_30", 1)],
    "depth": [("abs_err", -1), ("rel_err", -1), ("delta1", 1), ("delta2", 1), ("delta3", 1)],
}
def unit_vectors(y: torch.Tensor) -> torch.Tensor:
    """`F.normalize(y, dim=1)` (eps 1e-12 on the norm) without torch's vector-norm kernel, which is ~15x slower on CPU
    for a reduction over the channels of an NCHW map."""
    return y / y.pow(2).sum(1, keepdim=True).sqrt().clamp_min(1e-12)


_ANGLE_BINS = 18000  # 0.01 degree bins for the streamed median


class Meter:
    """One task's sufficient statistics over a split: `update(pred, batch)` per batch, `compute()` at the end."""

    def update(self, pred: torch.Tensor, batch: dict[str, torch.Tensor]) -> None:
        raise NotImplementedError

    def compute(self) -> dict[str, float]:
        raise NotImplementedError


class SegMeter(Meter):
    """One global confusion matrix over the valid pixels (label >= 0): mIoU, pixel accuracy, and the TP-only mIoU."""

    def __init__(self, num_classes: int = NUM_CLASSES, key: str = "label") -> None:
        self.num_classes = num_classes
        self.key = key
        self.conf = torch.zeros(num_classes, num_classes, dtype=torch.long)

    def update(self, pred, batch):
        gt = batch[self.key].reshape(-1).cpu()
        pr = pred.max(1).indices.reshape(-1).cpu()  # = argmax(1) (first maximum), 8x faster on CPU
        keep = gt >= 0
        idx = gt[keep] * self.num_classes + pr[keep]
        self.conf += torch.bincount(idx, minlength=self.num_classes ** 2).reshape(self.num_classes, -1)

    def compute(self):
        conf = self.conf.double()
        tp = conf.diag()
        union = conf.sum(0) + conf.sum(1) - tp
        defined = union > 0
        iou = tp[defined] / union[defined]
        total = conf.sum()
        return {
            "miou": 100 * float(iou.mean()) if defined.any() else math.nan,
            "pixacc": 100 * float(tp.sum() / total) if total > 0 else math.nan,
            "miou_tp": 100 * float((tp[tp > 0] / union[tp > 0]).mean()) if (tp > 0).any() else 0.0,
        }


class DepthMeter(Meter):
    """Pooled over the pixels with ground truth > 0: abs and rel error, δ < 1.25, 1.25², 1.25³."""

    def __init__(self) -> None:
        self.sums = torch.zeros(6, dtype=torch.float64)  # n, abs, rel, d1, d2, d3

    def update(self, pred, batch):
        gt = batch["depth"].float().cpu()
        pr = pred.float().cpu()
        valid = gt > 0
        g, p = gt[valid].double(), pr[valid].double()
        ratio = torch.maximum(p.clamp_min(1e-3) / g, g / p.clamp_min(1e-3))
        self.sums += torch.stack([
            torch.tensor(float(g.numel()), dtype=torch.float64), (p - g).abs().sum(), ((p - g).abs() / g).sum(),
            (ratio < 1.25).sum().double(), (ratio < 1.25 ** 2).sum().double(), (ratio < 1.25 ** 3).sum().double(),
        ])

    def compute(self):
        n, a, r, d1, d2, d3 = self.sums.tolist()
        if not n:
            return {k: math.nan for k, _ in METRICS["depth"]}
        return {"abs_err": a / n, "rel_err": r / n, "delta1": 100 * d1 / n, "delta2": 100 * d2 / n,
                "delta3": 100 * d3 / n}


class NormalMeter(Meter):
    """Angles between unit prediction and ground truth on valid pixels (non-zero normal), pooled: mean, median (from a
    0.01° histogram), and the shares within 11.25°, 22.5°, 30°."""

    def __init__(self) -> None:
        self.hist = torch.zeros(_ANGLE_BINS, dtype=torch.long)
        self.sums = torch.zeros(5, dtype=torch.float64)  # n, sum, <11.25, <22.5, <30

    def update(self, pred, batch):
        gt = batch["normal"].float().cpu()
        pr = pred.float().cpu()
        valid = gt.abs().sum(1) > 0
        gtn = unit_vectors(gt)  # = F.normalize(dim=1), without its slow CPU kernel
        prn = unit_vectors(pr)
        cos = (gtn * prn).sum(1)[valid].clamp(-1, 1).double()
        ang = torch.rad2deg(torch.acos(cos))
        bins = (ang / 180.0 * _ANGLE_BINS).long().clamp(0, _ANGLE_BINS - 1)
        self.hist += torch.bincount(bins, minlength=_ANGLE_BINS)
        self.sums += torch.stack([
            torch.tensor(float(ang.numel()), dtype=torch.float64), ang.sum(), (ang < 11.25).sum().double(),
            (ang < 22.5).sum().double(), (ang < 30).sum().double(),
        ])

    def compute(self):
        n, s, w1, w2, w3 = self.sums.tolist()
        if not n:
            return {k: math.nan for k, _ in METRICS["normal"]}
        cdf = torch.cumsum(self.hist, 0)
        # the median is the value of rank (n+1)//2 (1-based; torch.median's lower median for even n)
        rank = (int(n) + 1) // 2
        median_bin = int(torch.searchsorted(cdf, torch.tensor(rank, dtype=cdf.dtype)))
        median = (median_bin + 0.5) * 180.0 / _ANGLE_BINS
        return {"angle_mean": s / n, "angle_median": median, "within_11_25": 100 * w1 / n,
                "within_22_5": 100 * w2 / n, "within_30": 100 * w3 / n}


class L1Meter(Meter):
    """Mean absolute error over every pixel of the split (Taskonomy's keypoint and edge error), in the target's units."""

    def __init__(self, key: str) -> None:
        self.key = key
        self.sums = torch.zeros(2, dtype=torch.float64)  # n, sum |error|

    def update(self, pred, batch):
        err = (pred.float().cpu() - batch[self.key].float().cpu()).abs().double()
        self.sums += torch.stack([torch.tensor(float(err.numel()), dtype=torch.float64), err.sum()])

    def compute(self):
        n, s = self.sums.tolist()
        return {"abs_err": s / n if n else math.nan}


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
