"""AdapMTL (Xiang, Tang, Yang, Guan & Liu, "AdapMTL: Adaptive Pruning Framework for Multitask Learning Model",
ACM MM 2024; official code MitchellX/AdapMTL @ 29ce7ba, read as summarised in adapmtl.md §1 and §6).

Every prunable weight is used as S(W) = sign(W)·ReLU(|W| − sigmoid(s_c)) with **one learnable threshold s_c per
component** (the backbone and each task head), shared by all of the component's layers and trained jointly with the
weights, so each component finds its own sparsity. Its default loss weighting is AdapMTL's `adaptive` one (task weights
∝ the windowed relative loss change, `weighting.AdaptiveWeighting`). The exported model bakes S(W) in (the thresholded,
shrunk weights, not a mask of W), so its test metrics are those of the end of training.

How the overall sparsity is reached (`mechanism`):

- `faithful`: the official mechanism. Thresholds start at `init` (the code's sInit; the authors ran −15/−18, the
  README suggests −20) and share the weights' Adam group, learning rate and coupled L2 weight decay (`train.weight_decay`),
  which is what raises them; once the parameter-weighted overall sparsity reaches the target their gradients are
  dropped for that step (the code's freeze rule), while the weights keep training. The reached sparsity depends on
  (init, weight decay) and has to be hand-tuned (the sensitivity grid of the chapter shows how much).
- `controlled` (default, **beyond the paper**): the same learnable per-component thresholds, plus a control of the
  threshold pressure so any requested sparsity is reached without tuning. After every optimizer step all thresholds
  are shifted by one common amount δ in logit space (s_c ← s_c + δ), the smallest δ that makes the overall sparsity
  reach the scheduled budget r(k), which rises from 0 to the target along Zhu & Gupta's cubic ramp over the first
  `ramp` of the run and then stays there. δ is exact and cheap: weight w of component c is pruned iff
  logit(|w|) − s_c ≤ δ, so δ is one k-th smallest value over the whole net. The projection sets only the *level*; the
  *allocation* between components is what the thresholds learn: each s_c moves with its own Adam step (its own group,
  learning rate `threshold_travel / iterations`, i.e. at most `threshold_travel` logit units over the run whatever the
  profile) under the task loss and the coupled weight decay, and a component whose loss resists less ends up with a
  relatively higher threshold. Thresholds are never frozen (the projection holds the budget instead).

Hyperparameters (`--set`-able as method parameters): `mechanism` (controlled), `init` (faithful: −15.0; controlled: the
common starting logit, irrelevant since the projection sets the level), `threshold_travel` (1.0, chosen
on validation Δ_T at 90 % in quick among 1 and 3), `ramp` (0.5 of the
run), `project_every` (4 steps, and always the last one: between projections a threshold moves by at most
`threshold_travel / iterations` per step, so the budget barely drifts, and the projection costs a k-th value over all
weights), `start` (`dense`: from the dense reference, the authors' "Option 2", which they also used for the baselines;
`scratch`: from a random initialisation, "Option 1"). Ablations, as registry keys: `adapmtl_global_threshold` (one
threshold for the whole net) and `adapmtl_layer_thresholds` (one per layer, STR's granularity inside AdapMTL).

Deviations from the code, and why: the official loop tracks only the three NYU-v2 heads (it would miss Taskonomy's
extra heads); ours counts every component. The code picks its `best_*` checkpoint on the test split; we report the
final model. The adaptive weights are normalised to the number of tasks, not to a hard-coded 3.
"""

from __future__ import annotations

import math
import warnings
from typing import Any

import torch
from torch import nn

from ..models import prunable_layers
from .base import STRATEGIES, TrainContext, cubic_ramp, param
from .masked import load_into_masked
from .slack import A_MAX, kth_slack
from .soft_threshold import STR, flat_plan

STARTS = ("dense", "scratch")
LOGIT_RANGE = 30.0  # thresholds live in logit space; |s| <= 30 spans sigmoid 1e-13 .. 1 - 1e-13
CLAMPED_LOGIT = math.log(A_MAX) - math.log1p(-A_MAX)  # the slack of every |w| >= A_MAX (`slack`): ~16.1


class Mechanism:
    """How AdapMTL reaches its overall sparsity: hooks the strategy forwards (no `if mechanism ==` in the method)."""

    default_init = 0.0  # the thresholds' start (logit) when `init` is not given

    def __init__(self, owner: "AdapMTL") -> None:
        self.owner = owner

    def setup(self, ctx: TrainContext) -> None:
        pass

    def param_groups(self, train) -> list[dict[str, Any]]:
        return []

    def before_step(self, ctx: TrainContext, step: int) -> None:
        pass

    def after_step(self, ctx: TrainContext, step: int) -> None:
        pass

    def scalars(self) -> dict[str, float]:
        return {}

    def state_dict(self) -> dict[str, Any]:
        return {}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        pass


class Controlled(Mechanism):
    """Beyond the paper: every `project_every` steps all thresholds shift by the smallest common logit offset δ that
    prunes the budget (a cubic ramp to the target over `ramp` of the run); the learned thresholds (their own Adam group,
    learning rate `threshold_travel` / iterations) set the allocation between components."""

    def __init__(self, owner: "AdapMTL") -> None:
        super().__init__(owner)
        self.budget = 0.0  # the overall sparsity the last projection aimed at
        self.shortfall = 0  # weights the last projection could not prune (|w| at or above every reachable threshold)
        self.warned = False

    def setup(self, ctx: TrainContext) -> None:
        self.project(ctx, 0)

    def param_groups(self, train) -> list[dict[str, Any]]:
        return [{"params": list(self.owner.thresholds.values()), "lr": self.owner.travel / train.iterations}]

    def after_step(self, ctx: TrainContext, step: int) -> None:
        if step % self.owner.every == 0 or step == ctx.cfg.train.iterations:
            self.project(ctx, step)

    def budget_at(self, step: int, iterations: int) -> float:
        o = self.owner
        if o.start == "scratch":  # nothing to keep from a random start: hold the target from the first step
            return o.cfg.sparsity
        return cubic_ramp(o.cfg.sparsity, step, 0.0, o.ramp * iterations)

    @torch.no_grad()
    def project(self, ctx: TrainContext, step: int) -> None:
        """Shift every threshold by the smallest common δ (logit units) that prunes ≥ budget of all weights."""
        self.budget = self.budget_at(step, ctx.cfg.train.iterations)
        self.shortfall = 0
        plan = flat_plan(ctx.model)  # every weight in one buffer, group by group
        k = int(round(self.budget * plan.flat.numel()))
        thresholds = plan.thresholds
        if k == 0:
            delta = -LOGIT_RANGE - float(max(p.max() for p in thresholds))
        else:
            # nudge above the k-th value so float32 rounding in the forward pass still prunes it
            offsets = [float(p) for p in thresholds]
            kth = kth_slack(plan, offsets, k)  # logit(|w|) − s_g, exactly
            delta = kth + 1e-6 * max(1.0, abs(kth))
        for p in thresholds:
            p.add_(delta).clamp_(-LOGIT_RANGE, LOGIT_RANGE)
        if k and kth >= min(CLAMPED_LOGIT - s for s in offsets) - 1.0:
            self._check_reach(plan, k)

    def _check_reach(self, plan, k: int) -> None:
        """Weights with |w| near or above 1 cannot be soft-thresholded (a threshold is sigmoid(s) < 1): when the
        budget needs them, the projection prunes fewer than asked. Counted exactly (the zeros S(W) has under the new
        thresholds), logged as `budget_shortfall` and said once per run. Only checked when the k-th slack lies in
        the clamped range (|w| >= 1 − 1e-7), so an ordinary projection costs nothing more."""
        zeros = sum(int((plan.flat[lo:hi].abs() <= torch.sigmoid(p.detach().float())).sum())
                    for (lo, hi), p in zip(plan.group_spans, plan.thresholds))
        self.shortfall = max(0, k - zeros)
        if self.shortfall and not self.warned:
            self.warned = True
            warnings.warn(f"AdapMTL cannot reach sparsity {self.budget:.4f}: {self.shortfall} weights have |w| >= 1, "
                          f"which no soft threshold (sigmoid(s) < 1) prunes; the run is {self.shortfall} weights "
                          f"short of its budget (`budget_shortfall` in its history). Lower the sparsity or raise the "
                          f"weight decay.", RuntimeWarning, stacklevel=2)

    def scalars(self) -> dict[str, float]:
        return {"budget": self.budget, **({"budget_shortfall": float(self.shortfall)} if self.shortfall else {})}

    def state_dict(self) -> dict[str, Any]:
        return {"budget": self.budget, **({"shortfall": self.shortfall} if self.shortfall else {})}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.budget = state["budget"]
        self.shortfall = state.get("shortfall", 0)


class Faithful(Mechanism):
    """The official code: thresholds in the weights' Adam group (same learning rate, coupled weight decay), start at
    `init` (the code's sInit, −15), and their gradients are dropped once the overall sparsity reaches the target."""

    default_init = -15.0

    def __init__(self, owner: "AdapMTL") -> None:
        super().__init__(owner)
        self.frozen_steps = 0  # steps whose threshold gradients were dropped (target reached)

    def before_step(self, ctx: TrainContext, step: int) -> None:
        if overall_sparsity(ctx.model) >= self.owner.cfg.sparsity:
            for p in self.owner.thresholds.values():
                p.grad = None  # Adam skips a parameter without a gradient: no update, no weight decay
            self.frozen_steps += 1

    def scalars(self) -> dict[str, float]:
        return {"frozen_steps": float(self.frozen_steps)}

    def state_dict(self) -> dict[str, Any]:
        return {"frozen_steps": self.frozen_steps}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.frozen_steps = state["frozen_steps"]


MECHANISMS: dict[str, type[Mechanism]] = {"controlled": Controlled, "faithful": Faithful}


@STRATEGIES.register("adapmtl")
class AdapMTL(STR):
    granularity = "component"
    default_weighting = "adaptive"

    def __init__(self, cfg):
        super().__init__(cfg)
        name = param(self.params, "mechanism", "controlled", str, lambda v: v in MECHANISMS,
                     f"one of {', '.join(MECHANISMS)}")
        self.mechanism = MECHANISMS[name](self)
        self.start = param(self.params, "start", "dense", str, lambda v: v in STARTS, f"one of {', '.join(STARTS)}")
        self.init = param(self.params, "init", self.mechanism.default_init, float,
                          lambda v: -LOGIT_RANGE <= v <= LOGIT_RANGE, f"a logit in [-{LOGIT_RANGE}, {LOGIT_RANGE}]")
        self.travel = param(self.params, "threshold_travel", 1.0, float, lambda v: v > 0, "> 0 (logit units)")
        self.ramp = param(self.params, "ramp", 0.5, float, lambda v: 0 < v <= 1, "in (0, 1], fraction of the run")
        self.every = param(self.params, "project_every", 4, int, lambda v: v >= 1, "an integer >= 1 (steps)")
        self.needs_dense = self.start == "dense"

    def groups(self, model) -> dict[str, str]:
        return {layer.name: layer.component for layer in prunable_layers(model)}

    def setup(self, ctx: TrainContext) -> None:
        if ctx.dense_state is not None:
            load_into_masked(ctx.model, ctx.dense_state)
        with torch.no_grad():
            for p in self.thresholds.values():
                p.fill_(self.init)
        self.mechanism.setup(ctx)

    def param_groups(self, model, train) -> list[dict[str, Any]]:
        return self.mechanism.param_groups(train)

    def before_step(self, ctx: TrainContext, step: int) -> None:
        super().before_step(ctx, step)
        self.mechanism.before_step(ctx, step)

    def after_step(self, ctx: TrainContext, step: int) -> None:
        self.mechanism.after_step(ctx, step)

    def scalars(self) -> dict[str, float]:
        out = {f"threshold/{g}": float(torch.sigmoid(p.detach())) for g, p in self.thresholds.items()
               if self.granularity != "layer"}
        return {**out, **self.mechanism.scalars()}

    def state_dict(self) -> dict[str, Any]:
        return self.mechanism.state_dict()

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.mechanism.load_state_dict(state)


@STRATEGIES.register("adapmtl_global_threshold")
class AdapMTLGlobalThreshold(AdapMTL):
    """Ablation: one threshold for the whole network (no per-component adaptation)."""

    granularity = "global"

    def groups(self, model) -> dict[str, str]:
        return {layer.name: "all" for layer in prunable_layers(model)}


@STRATEGIES.register("adapmtl_layer_thresholds")
class AdapMTLLayerThresholds(AdapMTL):
    """Ablation: one threshold per layer (STR's granularity inside AdapMTL)."""

    granularity = "layer"

    def groups(self, model) -> dict[str, str]:
        return {layer.name: layer.name for layer in prunable_layers(model)}


@torch.no_grad()
def overall_sparsity(model: nn.Module) -> float:
    """Parameter-weighted fraction of exact zeros in the effective weights (the code's `getSparsity` rule)."""
    zeros = total = 0
    for layer in prunable_layers(model):
        w = layer.module.weight
        zeros += int((w == 0).sum())
        total += w.numel()
    return zeros / total
