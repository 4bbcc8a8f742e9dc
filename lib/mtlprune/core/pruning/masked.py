"""The base of every mask-based method: masks installed as parametrizations (`masks`), the dense weights loaded under
them, and the initial masks from the subclass's `masks(ctx)`."""

from __future__ import annotations

import torch

from ..errors import CacheError
from ..models import prunable_layers
from .base import PruningStrategy, TrainContext
from .masks import install_masks, set_masks


class MaskedStrategy(PruningStrategy):
    """Masks as parametrizations; subclasses compute the initial masks in `masks(ctx)`."""

    needs_dense = True

    def install(self, model) -> None:
        install_masks(model)

    def setup(self, ctx: TrainContext) -> None:
        if ctx.dense_state is not None:
            load_into_masked(ctx.model, ctx.dense_state)
        set_masks(ctx.model, self.masks(ctx))

    def masks(self, ctx: TrainContext) -> dict[str, torch.Tensor]:
        raise NotImplementedError


def load_into_masked(model, plain_state: dict[str, torch.Tensor]) -> None:
    """Load a plain (unparametrized) state dict into a model whose prunable weights are parametrized."""
    names = {f"{layer.name}.weight" for layer in prunable_layers(model)}
    remapped = {}
    for key, value in plain_state.items():
        if key in names:
            remapped[key[:-len("weight")] + "parametrizations.weight.original"] = value
        else:
            remapped[key] = value
    missing, unexpected = model.load_state_dict(remapped, strict=False)
    # masks and thresholds belong to the strategy, not to the dense state
    missing = [k for k in missing if not k.endswith(".mask") and "sparse_threshold" not in k]
    if missing or unexpected:
        raise CacheError(f"the dense run's weights do not fit this model (missing {missing[:3]}, unexpected "
                         f"{unexpected[:3]}): was it trained with another architecture? Delete the dense run folder "
                         f"to retrain it")
