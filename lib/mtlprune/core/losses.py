"""Per-task training losses (AdapMTL/DiSparse/LibMTL conventions), computed on valid pixels only.

seg: cross-entropy with ignore index -1; keypoints/edges (Taskonomy): L1; depth: L1 where ground truth > 0; normal: 1 - cosine where the ground-truth
normal is non-zero (predictions are already unit vectors).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

IGNORE_INDEX = -1


def seg_loss(pred: torch.Tensor, batch: dict[str, torch.Tensor], key: str = "label",
             class_weights: str | None = None) -> torch.Tensor:
    """Cross-entropy on labelled pixels; `class_weights` names a batch entry of per-sample class weights (N, C),
    identical rows, e.g. Taskonomy's prior factor: then the loss is the weighted mean over pixels, as torch's."""
    weight = batch[class_weights][0] if class_weights is not None else None
    return F.cross_entropy(pred.float(), batch[key], weight=weight, ignore_index=IGNORE_INDEX)


# Means over the valid pixels as masked sums (no boolean indexing: it synchronises on a nonzero() and gathers)
def depth_loss(pred: torch.Tensor, batch: dict[str, torch.Tensor]) -> torch.Tensor:
    gt = batch["depth"]
    valid = (gt > 0).to(gt.dtype)
    return ((pred.float() - gt).abs() * valid).sum() / valid.sum().clamp_min(1.0)


def normal_loss(pred: torch.Tensor, batch: dict[str, torch.Tensor]) -> torch.Tensor:
    gt = batch["normal"]
    valid = (gt.abs().sum(1) > 0).to(gt.dtype)
    cos = (pred.float() * gt).sum(1)
    return ((1 - cos) * valid).sum() / valid.sum().clamp_min(1.0)


def l1_loss(pred: torch.Tensor, batch: dict[str, torch.Tensor], key: str) -> torch.Tensor:
    """Mean absolute error over every pixel (Taskonomy's keypoint and edge targets are defined everywhere)."""
    return (pred.float() - batch[key]).abs().mean()
