"""The hooks through which a pruning method plugs into the one training loop (no method names in the loop).

The loop calls, in order: `setup(ctx)` once before the first step (compute masks, install parametrizations, load the
dense weights the method starts from), `extra_parameters()` when building the optimizer (e.g. learnable thresholds),
`after_step(ctx, step)` after every optimizer step (re-apply masks, follow a schedule), and `scalars()` whenever it logs
(thresholds, current sparsity...). `state_dict`/`load_state_dict` make a strategy resumable from a checkpoint.
`dense` is the identity strategy used by the dense reference.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable, Iterator

import torch
from torch import nn

from ..config import PruningConfig, RunConfig
from ..registry import Registry

STRATEGIES: Registry = Registry("pruning method")


@dataclass
class TrainContext:
    """What a strategy may use: the model, the run config, training batches and, for pruned runs, the dense weights."""

    model: nn.Module
    cfg: RunConfig
    device: torch.device
    train_batches: Callable[[], Iterator[dict[str, torch.Tensor]]]
    dense_state: dict[str, torch.Tensor] | None = None
    extras: dict[str, Any] = field(default_factory=dict)


class PruningStrategy:
    needs_dense = False  # True: the run starts from the trained dense reference (`cfg.dense`)

    def __init__(self, cfg: PruningConfig) -> None:
        self.cfg = cfg

    def setup(self, ctx: TrainContext) -> None:
        if ctx.dense_state is not None:
            ctx.model.load_state_dict(ctx.dense_state)

    def extra_parameters(self) -> list[nn.Parameter]:
        return []

    def after_step(self, ctx: TrainContext, step: int) -> None:
        pass

    def scalars(self) -> dict[str, float]:
        return {}

    def state_dict(self) -> dict[str, Any]:
        return {}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        pass


@STRATEGIES.register("dense")
class Dense(PruningStrategy):
    """No pruning: the dense multi-task reference every Δ is measured against."""


def build_strategy(cfg: PruningConfig) -> PruningStrategy:
    return STRATEGIES.get(cfg.method)(cfg)
