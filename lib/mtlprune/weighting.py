"""Loss-weighting axis: how per-task losses combine into the training loss.

A weighting is an `nn.Module` (so learnable weights, e.g. uncertainty weighting, join the optimizer and the
checkpoint) called as `weighting(losses, step) -> (total, weights)`; the trainer logs the weights it returns.
Registered here: `equal` (Σ_t L_t). Later issues add adaptive (AdapMTL), uncertainty (Kendall et al.) and DWA.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from .registry import Registry

WEIGHTINGS: Registry = Registry("loss weighting")


class Weighting(nn.Module):
    def __init__(self, tasks: tuple[str, ...], **params: Any) -> None:
        super().__init__()
        self.tasks = tuple(tasks)
        if params:
            raise ValueError(f"{type(self).__name__} takes no parameters, got {sorted(params)}")

    def forward(self, losses: dict[str, torch.Tensor], step: int) -> tuple[torch.Tensor, dict[str, float]]:
        raise NotImplementedError


@WEIGHTINGS.register("equal")
class EqualWeighting(Weighting):
    """Every task loss with weight 1 (the dense reference and every baseline unless stated)."""

    def forward(self, losses, step):
        return sum(losses.values()), {t: 1.0 for t in losses}


def build_weighting(name: str, tasks: tuple[str, ...], params: dict[str, Any]) -> Weighting:
    return WEIGHTINGS.get(name)(tasks, **params)
