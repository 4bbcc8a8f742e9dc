"""Achieved sparsity (ShrinkBench's rule: report what is there, never what was asked for).

Counts exact zeros of the *effective* weight each Conv2d/Linear uses in its forward pass (a parametrized weight is
read through its parametrization), per layer, per component and overall; overall and component figures are weighted
by parameter count.
"""

from __future__ import annotations

import torch

from .models import MultiTaskNet, prunable_layers


@torch.no_grad()
def sparsity_report(model: MultiTaskNet) -> dict:
    layers, comp_zero, comp_total = {}, {}, {}
    for layer in prunable_layers(model):
        w = layer.module.weight
        zeros, total = int((w == 0).sum()), w.numel()
        layers[layer.name] = {"component": layer.component, "zeros": zeros, "params": total,
                              "sparsity": zeros / total}
        comp_zero[layer.component] = comp_zero.get(layer.component, 0) + zeros
        comp_total[layer.component] = comp_total.get(layer.component, 0) + total
    total = sum(comp_total.values())
    return {
        "overall": sum(comp_zero.values()) / total,
        "components": {c: comp_zero[c] / comp_total[c] for c in comp_total},
        "component_params": comp_total,
        "prunable_params": total,
        "layers": layers,
    }


@torch.no_grad()
def component_sparsity(model: MultiTaskNet) -> dict[str, float]:
    """Scalars for the training log: `sparsity/<component>` and `sparsity/overall`."""
    report = sparsity_report(model)
    return {"sparsity/overall": report["overall"], **{f"sparsity/{c}": v for c, v in report["components"].items()}}
