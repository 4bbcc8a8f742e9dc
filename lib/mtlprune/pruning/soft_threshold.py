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
import torch.nn.functional as F
from torch import nn
from torch.nn.utils import parametrize

from ..models import prunable_layers
from .base import STRATEGIES, PruningStrategy, TrainContext, param
from .masks import original
from .masked import load_into_masked


class SoftThreshold(nn.Module):
    def __init__(self, sparse_threshold: nn.Parameter) -> None:
        super().__init__()
        self.sparse_threshold = sparse_threshold

    def forward(self, w: torch.Tensor) -> torch.Tensor:
        # The threshold's gradient is not taken through autograd but by `threshold_gradients` after the backward pass
        # (the same number, fewer passes over the weights); here λ = sigmoid(s) is a constant.
        t = torch.sigmoid(self.sparse_threshold.detach())
        if w.device.type != "cpu":  # reading λ as a number below would synchronise once per layer on a GPU
            return torch.sign(w) * torch.relu(w.abs() - t)
        # softshrink keeps W − λ above λ and W + λ below −λ, which is sign(W)·(|W| − λ), in one pass (its backward,
        # dS/dW = 1 where kept, in one more)
        return F.softshrink(w, float(t))


def threshold_groups(model) -> list[tuple[nn.Parameter, list[nn.Parameter]]]:
    """Each soft threshold with the raw weights it serves, found once (parameters keep their identity while training;
    walking the parametrized modules every step costs more Python time than the arithmetic)."""
    groups: dict[int, tuple[nn.Parameter, list[nn.Parameter]]] = {}
    for layer in prunable_layers(model):
        s = layer.module.parametrizations.weight[0].sparse_threshold
        groups.setdefault(id(s), (s, []))[1].append(original(layer.module))
    return list(groups.values())


@torch.no_grad()
def threshold_gradients(groups: list[tuple[nn.Parameter, list[nn.Parameter]]]) -> None:
    """dL/ds of every soft threshold, after the backward pass: with S = sign(W)·ReLU(|W| − λ), λ = sigmoid(s),
    dL/dλ = −Σ dL/dS · sign(W) over the kept weights, and dL/dW = dL/dS exactly there (0 elsewhere), so
    dL/ds = −λ(1 − λ) Σ_layers ⟨dL/dW, sign(W)⟩. Accumulated into `s.grad` (one threshold may serve many layers), as
    autograd would; the optimizer then treats s like any parameter (its weight decay included)."""
    for s, weights in groups:
        live = [w for w in weights if w.grad is not None]
        if not live:
            continue
        products = torch._foreach_mul(torch._foreach_sign([w.detach() for w in live]), [w.grad for w in live])
        dot = torch.stack([p.sum() for p in products]).sum()
        t = torch.sigmoid(s.detach())
        g = (-dot * t * (1 - t)).to(s.device)
        s.grad = g.reshape(s.shape) if s.grad is None else s.grad + g


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
        self.threshold_groups = threshold_groups(model)

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

    def before_step(self, ctx: TrainContext, step: int) -> None:
        threshold_gradients(self.threshold_groups)

    def scalars(self):
        return {f"threshold/{g}": float(torch.sigmoid(p.detach())) for g, p in self.thresholds.items()
                if self.granularity != "layer"}

