"""DiSparse (Sun et al., CVPR 2022): disentangled per-task saliencies and a unanimous ("union") rule on shared weights.

Each task k scores its own parameter set (the shared backbone plus its head) with task-k-only information and keeps its
top fraction r; a head keeps what its task keeps; a **backbone weight is pruned only if every task would prune it**
(backbone mask = OR over tasks). The official code hand-tunes r per dataset so the union lands near the target; here r
is found by bisection so the union hits the requested overall sparsity (a documented deviation: no hand tuning).

- `disparse_static`: at initialization, score |∂L_k/∂c| = |g_k ⊙ w| summed over `batches` mini-batches (official: 50;
  default here 8), each task's scores normalized by their sum over its parameter set; train the sparse net.
- `disparse_pt`: prune the trained dense reference with `saliency` = `magnitude` (|w|, the official NYU/Cityscapes
  choice) or `taylor` (Σ|∂L_k/∂w| · w², the official Taskonomy choice), then fine-tune.
- `disparse_dynamic`: RigL-style sparse training. ERK layer densities (power `erk_power`, 0.9) and random masks;
  every `interval`·iterations until `end`·iterations: drop the smallest |w| of each layer to density d_l(1 − p_t) with
  p_t = `prune_rate`·(1 + cos(π t/T_end))/2, then grow back d_l·p_t of the largest task-k dense gradients
  (|∂L_k/∂W| on the batch) per task, backbone growth = OR over tasks; a last drop at `end` fixes density d_l.
  Deviations: one batch per update (the official code splits it in 2 chunks), the Adam state is kept as is.
"""

from __future__ import annotations

import math

import torch

from ..models import prunable_layers
from .base import STRATEGIES, TrainContext, param
from .masks import effective_weights, get_masks, kept_magnitudes, set_masks, topk_mask
from .masked import MaskedStrategy
from .saliency import task_gradients


def task_layers(model) -> dict[str, list[str]]:
    """Per task, the prunable layers it owns: every backbone layer plus its head's."""
    layers = prunable_layers(model)
    return {t: [layer.name for layer in layers if layer.component in ("backbone", t)] for t in model.heads.keys()}


def union_rule(keeps: dict[str, dict[str, torch.Tensor]], component_of: dict[str, str]) -> dict[str, torch.Tensor]:
    """Combine per-task keep masks: a head layer takes its task's mask; a backbone layer keeps a weight if any task
    keeps it (it is pruned only when all tasks agree to prune it)."""
    out: dict[str, torch.Tensor] = {}
    for task, masks in keeps.items():
        for name, m in masks.items():
            comp = component_of[name]
            if comp == "backbone":
                out[name] = torch.maximum(out[name], m) if name in out else m.clone()
            elif comp == task:
                out[name] = m.clone()
    return out


def union_masks_at(scores: dict[str, dict[str, torch.Tensor]], component_of: dict[str, str],
                   sparsity: float, iters: int = 40) -> dict[str, torch.Tensor]:
    """Bisect the per-task keep ratio r so the union mask has the requested overall sparsity."""
    names = {n for per_task in scores.values() for n in per_task}
    numel = {n: next(per_task[n] for per_task in scores.values() if n in per_task).numel() for n in names}
    n_total = sum(numel.values())
    target_keep = (1 - sparsity) * n_total
    flat = {}
    for task, per_task in scores.items():
        order = list(per_task)
        flat[task] = (order, torch.cat([per_task[n].reshape(-1).float() for n in order]))

    def masks_for(ratio: float) -> dict[str, torch.Tensor]:
        keeps = {}
        for task, (order, vec) in flat.items():
            m = topk_mask(vec, int(round(ratio * vec.numel())))
            keeps[task], i = {}, 0
            for n in order:
                keeps[task][n] = m[i:i + numel[n]].reshape(scores[task][n].shape)
                i += numel[n]
        return union_rule(keeps, component_of)

    lo, hi = 0.0, 1.0
    best = masks_for(lo)
    for _ in range(iters):
        mid = (lo + hi) / 2
        m = masks_for(mid)
        kept = sum(float(v.sum()) for v in m.values())
        if kept > target_keep:
            hi = mid
        else:
            lo, best = mid, m
    return best


def normalized(scores: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    total = sum(float(s.sum()) for s in scores.values()) or 1.0
    return {n: s / total for n, s in scores.items()}


class DiSparseBase(MaskedStrategy):
    def union_from_task_scores(self, ctx, per_task_scores) -> dict[str, torch.Tensor]:
        component_of = {layer.name: layer.component for layer in prunable_layers(ctx.model)}
        return union_masks_at(per_task_scores, component_of, self.cfg.sparsity)


@STRATEGIES.register("disparse_static")
class DiSparseStatic(DiSparseBase):
    needs_dense = False

    def __init__(self, cfg):
        super().__init__(cfg)
        self.batches = param(self.params, "batches", 8, int, lambda v: v >= 1, "an integer >= 1")

    def masks(self, ctx):
        grads = task_gradients(ctx.model, ctx.train_batches(), self.batches, ctx.device, per_task=True)
        weights = effective_weights(ctx.model)
        owned = task_layers(ctx.model)
        per_task = {t: normalized({n: grads[t][n] * weights[n].abs() for n in owned[t]}) for t in owned}
        return self.union_from_task_scores(ctx, per_task)


@STRATEGIES.register("disparse_pt")
class DiSparsePretrained(DiSparseBase):
    def __init__(self, cfg):
        super().__init__(cfg)
        self.saliency = param(self.params, "saliency", "magnitude", str, lambda v: v in ("magnitude", "taylor"),
                              "one of magnitude, taylor")
        self.batches = param(self.params, "batches", 8, int, lambda v: v >= 1, "an integer >= 1")

    def masks(self, ctx):
        weights = effective_weights(ctx.model)
        owned = task_layers(ctx.model)
        if self.saliency == "magnitude":
            per_task = {t: normalized({n: weights[n].abs() for n in owned[t]}) for t in owned}
        else:
            grads = task_gradients(ctx.model, ctx.train_batches(), self.batches, ctx.device, per_task=True)
            per_task = {t: normalized({n: grads[t][n] * weights[n] ** 2 for n in owned[t]}) for t in owned}
        return self.union_from_task_scores(ctx, per_task)


def erk_densities(shapes: dict[str, torch.Size], density: float, power: float = 1.0) -> dict[str, float]:
    """Erdős–Rényi-Kernel layer densities (Evci et al. 2020) with overall density `density`; saturated layers dense."""
    numel = {n: math.prod(s) for n, s in shapes.items()}
    dense: set[str] = set()
    while True:
        raw = {n: (sum(s) / numel[n]) ** power for n, s in shapes.items() if n not in dense}
        budget = density * sum(numel.values()) - sum(numel[n] for n in dense)
        eps = budget / sum(raw[n] * numel[n] for n in raw)
        over = {n for n in raw if eps * raw[n] > 1}
        if not over:
            return {n: 1.0 if n in dense else eps * raw[n] for n in shapes}
        dense |= over


@STRATEGIES.register("disparse_dynamic")
class DiSparseDynamic(DiSparseBase):
    needs_dense = False

    def __init__(self, cfg):
        super().__init__(cfg)
        unit = lambda v: 0 < v <= 1  # noqa: E731
        self.interval = param(self.params, "interval", 0.025, float, unit, "in (0, 1], fraction of iterations")
        self.end = param(self.params, "end", 0.75, float, unit, "in (0, 1], fraction of iterations")
        self.prune_rate = param(self.params, "prune_rate", 0.5, float, unit, "in (0, 1]")
        self.erk_power = param(self.params, "erk_power", 0.9, float, lambda v: v > 0, "> 0")
        self.density: dict[str, float] = {}
        self.finished = False

    def masks(self, ctx):
        weights = effective_weights(ctx.model)
        self.density = erk_densities({n: w.shape for n, w in weights.items()}, 1 - self.cfg.sparsity, self.erk_power)
        gen = torch.Generator().manual_seed(20_000 + ctx.seed)
        return {n: topk_mask(torch.rand(w.shape, generator=gen), max(1, int(round(self.density[n] * w.numel()))))
                for n, w in weights.items()}

    def _drop(self, model, fraction_kept: float) -> dict[str, torch.Tensor]:
        current, scores = get_masks(model), kept_magnitudes(model)
        out = {}
        for n, score in scores.items():
            keep = max(1, int(round(self.density[n] * fraction_kept * score.numel())))
            out[n] = topk_mask(score, min(keep, int(current[n].sum())))
        return out

    def after_step(self, ctx: TrainContext, step: int) -> None:
        iters = ctx.cfg.train.iterations
        t_end = max(1, int(round(self.end * iters)))
        interval = max(1, int(round(self.interval * iters)))
        if self.finished or step % interval != 0 and step < t_end:
            return
        if step >= t_end:  # final drop to the ERK densities; the masks are fixed from here on
            set_masks(ctx.model, self._drop(ctx.model, 1.0))
            self.finished = True
            return
        rate = self.prune_rate * (1 + math.cos(math.pi * step / t_end)) / 2
        dropped = self._drop(ctx.model, 1 - rate)
        grads = task_gradients(ctx.model, ctx.train_batches(), 1, ctx.device, per_task=True)
        owned = task_layers(ctx.model)
        keeps = {}
        for t, names in owned.items():
            keeps[t] = {}
            for n in names:
                m = dropped[n]
                n_grow = max(0, int(round(self.density[n] * m.numel())) - int(m.sum()))
                score = torch.where(m > 0, torch.full_like(m, -1.0), grads[t][n])
                keeps[t][n] = torch.maximum(m, topk_mask(score, n_grow))
        component_of = {layer.name: layer.component for layer in prunable_layers(ctx.model)}
        set_masks(ctx.model, union_rule(keeps, component_of))  # grown weights start at zero (RigL)

    def updates(self, iterations: int) -> int:
        t_end = max(1, int(round(self.end * iterations)))
        interval = max(1, int(round(self.interval * iterations)))
        return len(range(interval, min(t_end, iterations + 1), interval)) + (1 if t_end <= iterations else 0)

    def state_dict(self):
        return {"density": self.density, "finished": self.finished}

    def load_state_dict(self, state):
        self.density, self.finished = state["density"], state["finished"]
