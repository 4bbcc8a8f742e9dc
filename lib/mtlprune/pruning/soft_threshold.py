"""STR, soft threshold weight reparameterization (Kusupati et al., ICML 2020), one learnable threshold per layer.

Every prunable weight is used as S(W, s) = sign(W)·ReLU(|W| − sigmoid(s)) with a learnable scalar s per layer, trained
jointly with the weights by the same Adam (coupled L2 weight decay on s pushes sigmoid(s) up, the task loss pushes it
down). STR has no sparsity target: what it reaches is reported. How its knobs are set here (`init`):
`target` (default) starts every layer's threshold at the global magnitude quantile of the dense weights at the requested
sparsity (so the run starts near the target and STR's dynamics then move each layer), or a float s_init used for every
layer (the STR/AdapMTL style, e.g. -15). Starts from the dense reference, as AdapMTL ran its comparisons.
The exported model bakes S(W, s) in (a plain mask of W would keep the un-shrunk values).

`SoftThreshold` takes its threshold parameter from outside so that AdapMTL can share one per component.
"""

from __future__ import annotations

import math

import torch
from torch import nn
from torch.nn.utils import parametrize

from ..models import prunable_layers
from .base import STRATEGIES, PruningStrategy, TrainContext, param
from .masks import original
from .masked import load_into_masked


class SoftThreshold(nn.Module):
    """S(W) = sign(W)·ReLU(|W| − sigmoid(s)) of one layer. In a training forward pass of the whole model the value
    comes from `fused` (every layer's S(W) computed at once by `SoftShrinkAll`, set by the model's pre-hook); elsewhere
    (evaluation, export, sparsity counts, a sub-module called alone) it is computed here, by the same function."""

    def __init__(self, sparse_threshold: nn.Parameter) -> None:
        super().__init__()
        self.sparse_threshold = sparse_threshold
        self.fused: torch.Tensor | None = None

    def forward(self, w: torch.Tensor) -> torch.Tensor:
        if self.fused is not None:
            return self.fused
        return SoftShrinkAll.apply((0,), self.sparse_threshold, w)[0]


def _shrink(weights: list[torch.Tensor], lams: list[torch.Tensor]) -> list[torch.Tensor]:
    """S = W − clamp(W, −λ, λ) per tensor: W − λ above λ, W + λ below −λ, exactly +0 between, the same floats as
    `F.softshrink(W, λ)` (a test checks it bit for bit) in three multi-tensor passes instead of one kernel per layer."""
    if weights[0].device.type != "cpu":  # reading λ as a number would synchronise once per threshold on a GPU
        return [w - torch.clamp(w, -lam, lam) for w, lam in zip(weights, lams)]
    values = [float(lam) for lam in lams]
    inside = torch._foreach_clamp_min(weights, [-v for v in values])
    torch._foreach_clamp_max_(inside, values)
    return torch._foreach_sub(weights, inside)


class SoftShrinkAll(torch.autograd.Function):
    """Every soft-thresholded layer in one autograd node. Forward: S_i = S(W_i, λ_g(i)), λ = sigmoid(s). Backward:
    dL/dW_i = dL/dS_i where S_i ≠ 0 (0 elsewhere, as softshrink's backward), and for each threshold
    dL/ds_g = −λ_g(1 − λ_g) Σ_{i in g} ⟨dL/dW_i, sign(W_i)⟩ (dS/dλ = −sign(W) where kept), summed per layer and then
    over the group's layers in order, the number STR's separate pass after the backward computed before. One node
    and a few multi-tensor passes instead of one parametrization node per layer plus that pass
    (`benchmarks/step_overhead.py`). Inputs: the threshold index of each weight, the thresholds, the weights."""

    @staticmethod
    def forward(ctx, group_of: tuple[int, ...], *tensors: torch.Tensor) -> tuple[torch.Tensor, ...]:
        n_groups = len(tensors) - len(group_of)
        lams = [torch.sigmoid(s.detach()) for s in tensors[:n_groups]]
        out = _shrink(list(tensors[n_groups:]), [lams[g] for g in group_of])
        signs = torch._foreach_sign(out)  # sign(W) where kept, 0 where pruned: the backward's mask and sign at once
        ctx.group_of, ctx.n_groups = group_of, n_groups
        ctx.save_for_backward(*lams, *signs)
        return tuple(out)

    @staticmethod
    def backward(ctx, *grads: torch.Tensor):
        n_groups, group_of = ctx.n_groups, ctx.group_of
        lams, signs = ctx.saved_tensors[:n_groups], list(ctx.saved_tensors[n_groups:])
        grad_w = torch._foreach_mul(list(grads), torch._foreach_abs(signs))
        grad_s: list[torch.Tensor | None] = [None] * n_groups
        if any(ctx.needs_input_grad[1:1 + n_groups]):
            parts: list[list[torch.Tensor]] = [[] for _ in range(n_groups)]
            for g, p in zip(group_of, torch._foreach_mul(signs, grad_w)):
                parts[g].append(p.sum())
            for g, t in enumerate(lams):
                if parts[g]:
                    grad_s[g] = -torch.stack(parts[g]).sum() * t * (1 - t)
        return (None, *grad_s, *grad_w)


def _fuse_pre_hook(model: nn.Module, args) -> None:
    modules, weights, thresholds, group_of = model._soft_threshold_plan
    if not torch.is_grad_enabled():  # evaluation: each layer computes its own value, no autograd node needed
        for m in modules:
            m.fused = None
        return
    for m, s in zip(modules, SoftShrinkAll.apply(group_of, *thresholds, *weights)):
        m.fused = s


def _fuse_post_hook(model: nn.Module, args, output) -> None:
    for m in model._soft_threshold_plan[0]:
        m.fused = None  # these values belong to this forward pass: the weights change at the next step


def fuse_soft_thresholds(model: nn.Module) -> None:
    """Compute every layer's S(W) at once in each forward pass of `model` with gradients enabled (`SoftShrinkAll`).
    The plan (the parametrizations, their raw weights and thresholds, the threshold of each layer) is an attribute of
    the model, so a deep copy carries its own; the hooks are registered once."""
    modules = [layer.module.parametrizations.weight[0] for layer in prunable_layers(model)]
    index: dict[int, int] = {}
    for m in modules:
        index.setdefault(id(m.sparse_threshold), len(index))
    thresholds = list({id(m.sparse_threshold): m.sparse_threshold for m in modules}.values())
    weights = [original(layer.module) for layer in prunable_layers(model)]
    model._soft_threshold_plan = (modules, weights, thresholds, tuple(index[id(m.sparse_threshold)] for m in modules))
    if not getattr(model, "_soft_threshold_hooked", False):
        model.register_forward_pre_hook(_fuse_pre_hook)
        model.register_forward_hook(_fuse_post_hook)
        model._soft_threshold_hooked = True


def install_soft_thresholds(model, group_of: dict[str, str], s_init: float = 0.0) -> dict[str, nn.Parameter]:
    """One threshold per group (layer name -> group); returns the parameters by group. Idempotent."""
    thresholds: dict[str, nn.Parameter] = {}
    for layer in prunable_layers(model):
        if parametrize.is_parametrized(layer.module, "weight"):
            thresholds[group_of[layer.name]] = layer.module.parametrizations.weight[0].sparse_threshold
            continue
        g = group_of[layer.name]
        if g not in thresholds:  # on the weights' device (a CPU threshold would stay behind a model moved to CUDA)
            thresholds[g] = nn.Parameter(torch.tensor(float(s_init), device=layer.module.weight.device))
        parametrize.register_parametrization(layer.module, "weight", SoftThreshold(thresholds[g]))
    return thresholds


def logit(p: float) -> float:
    p = min(max(p, 1e-12), 1 - 1e-7)
    return math.log(p / (1 - p))


@STRATEGIES.register("str")
class STR(PruningStrategy):
    needs_dense = True
    granularity = "layer"  # AdapMTL overrides: one threshold per component

    def __init__(self, cfg):
        super().__init__(cfg)
        init = self.params.get("init", "target")
        if init != "target":
            init = param(self.params, "init", 0.0, float, lambda v: -1e4 < v < 1e4, "'target' or a float s_init")
        self.init = self.params.resolved["init"] = init
        self.thresholds: dict[str, nn.Parameter] = {}

    def groups(self, model) -> dict[str, str]:
        return {layer.name: layer.name for layer in prunable_layers(model)}

    def install(self, model) -> None:
        self.thresholds = install_soft_thresholds(model, self.groups(model))
        fuse_soft_thresholds(model)

    def setup(self, ctx: TrainContext) -> None:
        if ctx.dense_state is not None:
            load_into_masked(ctx.model, ctx.dense_state)
        if self.init == "target":
            with torch.no_grad():
                raw = torch.cat([original(layer.module).abs().reshape(-1) for layer in prunable_layers(ctx.model)])
                k = max(1, int(round(self.cfg.sparsity * raw.numel())))
                s0 = logit(float(raw.kthvalue(k).values))
        else:
            s0 = float(self.init)
        with torch.no_grad():
            for p in self.thresholds.values():
                p.fill_(s0)

    def scalars(self):
        return {f"threshold/{g}": float(torch.sigmoid(p.detach())) for g, p in self.thresholds.items()
                if self.granularity != "layer"}

