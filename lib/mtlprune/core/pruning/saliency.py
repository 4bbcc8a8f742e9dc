"""Gradient saliencies for data-driven pruning (SNIP, DiSparse): dense gradients w.r.t. the *effective* weights.

With masks installed, the gradient w.r.t. the stored original is zero wherever the mask is zero; RigL-style growth
and connection sensitivity need the gradient w.r.t. the weight the forward pass uses. `parametrize.cached()` makes
every parametrized weight a single tensor of the graph, so `autograd.grad` can be taken w.r.t. those tensors.
BatchNorm running statistics are restored afterwards: scoring batches must not change the model.
"""

from __future__ import annotations

import copy
from typing import Iterator

import torch
from torch.nn.utils import parametrize

from ..tasks import task_losses
from ..models import MultiTaskNet, prunable_layers


def task_gradients(model: MultiTaskNet, batches: Iterator[dict[str, torch.Tensor]], n_batches: int,
                   device: torch.device, per_task: bool) -> dict[str, dict[str, torch.Tensor]]:
    """Sum over `n_batches` of |∂L/∂W_eff| per prunable layer: per task (`per_task`) or for the summed loss ("all")."""
    layers = prunable_layers(model)
    keys = list(model.heads.keys()) if per_task else ["all"]
    acc = {k: {layer.name: torch.zeros_like(layer.module.weight) for layer in layers} for k in keys}
    bn_state = copy.deepcopy({k: v for k, v in model.state_dict().items() if "running" in k or "num_batches" in k})
    was_training = model.training
    model.train()
    for _, batch in zip(range(n_batches), batches):
        batch = {k: v.to(device) for k, v in batch.items()}
        with parametrize.cached():
            weights = [layer.module.weight for layer in layers]
            losses = task_losses(model(batch["image"]), batch)
            targets = [(k, losses[k]) for k in keys] if per_task else [("all", sum(losses.values()))]
            for i, (k, loss) in enumerate(targets):
                grads = torch.autograd.grad(loss, weights, retain_graph=i < len(targets) - 1, allow_unused=True)
                for layer, g in zip(layers, grads):
                    if g is not None:
                        acc[k][layer.name] += g.detach().abs()
    model.load_state_dict({**model.state_dict(), **bn_state})
    model.train(was_training)
    return acc
