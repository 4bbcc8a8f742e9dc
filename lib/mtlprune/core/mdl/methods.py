"""Multi-domain methods, one registry (like the pruning strategies): what trains, which regulariser, and how the
deployable model is formed. Every method starts from the same source-pretrained backbone.

- `individual`: one network per domain, fully fine-tuned from the source backbone (the Decathlon's baseline; the
  S-score's reference errors). Costs D backbones.
- `frozen`: the source backbone frozen (convolutions and BatchNorms), one linear head per domain.
- `ba2`: BA² (Berriel et al., ICCV 2019): per-domain BatchNorms, heads and switches under a per-domain budget, **no
  sharing term** (shared convolutions as for ours, `train_backbone`); the union it would keep is what removal keeps.
- `budget_aware`: Budget-Aware Pruning (dos Santos et al., ICIAP 2023 / Pattern Recognition 2025): BA² plus a
  parameter-sharing term (`union` by default; `intersection`, `jaccard`) with a fixed or learnable weight, all domains
  trained jointly, then filters no domain uses are removed.

Hyperparameters (`MethodConfig`): budget, budget_weight, sharing, sharing_weight, learnable_weight, granularity,
switch_init, dual_lr. Reconstructed choices (the papers' equations and code were not available; budget_mdl.md): the
per-domain budget is a hard constraint enforced by a projection after every step: a domain over budget shifts all its
latents down by the smallest common amount that fits (its weakest filters go first). A soft hinge
budget_weight · Σ_d max(0, usage_d − β) (BA²'s constraint as a penalty) can be added; its default weight is 0 because
with Adam's momentum the hinge kept pushing after the budget was met and emptied the domains (usage 0.22 at β = 0.5,
0.05 at β = 0.25 in quick), as did a Lagrangian with ascent on the multiplier; a learnable sharing
weight ascends on the sharing term (`dual_lr`); switch latents start on, ordered by the source filters' importance
(‖filter‖·|γ|), so the weakest go first; the shared convolutions train jointly with everything else
(`train_backbone`, default true: whether the paper freezes them, as BA² does, is not known; `false` is BA²'s
frozen backbone).
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from .. import catalogue
from ..config import MDLConfig
from ..registry import Registry
from .model import MultiDomainResNet
from .sharing import SHARING, weighted

MDL_METHODS: Registry = Registry("multi-domain method")


class MDLMethod:
    """The hooks of a multi-domain method: `networks` (which domains each trained network serves), `param_groups`,
    `bn_train_mode`, `regularizer`, `after_step`, `finish`, and `state_dict`/`load_state_dict` for resuming."""

    uses_switches = False
    default_sharing = "none"

    def __init__(self, cfg: MDLConfig) -> None:
        self.cfg = cfg
        self.m = cfg.method

    def networks(self, n_domains: int, seed: int) -> list[tuple[list[int], int]]:
        """(domains served, seed) of every network trained: one network for all domains by default."""
        return [(list(range(n_domains)), seed)]

    def state_dict(self) -> dict[str, Any]:
        return {}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        pass

    @property
    def granularity(self) -> str | None:
        return self.m.granularity if self.uses_switches else None

    def param_groups(self, model: MultiDomainResNet) -> list[dict[str, Any]]:
        raise NotImplementedError

    def bn_train_mode(self) -> bool:
        return True

    def regularizer(self, model: MultiDomainResNet) -> tuple[torch.Tensor, dict[str, float]]:
        return torch.zeros(()), {}

    def after_step(self, model: MultiDomainResNet, scalars: dict[str, float]) -> None:
        pass

    def finish(self, model: MultiDomainResNet) -> None:
        pass


def _not_in(model: nn.Module, prefixes: tuple[str, ...]) -> list[nn.Parameter]:
    return [p for n, p in model.named_parameters() if not n.startswith(prefixes) and "switches" not in n]


@MDL_METHODS.register("individual")
class Individual(MDLMethod):
    def networks(self, n_domains, seed):
        return [([d], seed * 1000 + d) for d in range(n_domains)]  # one network per domain, each trained alone

    def param_groups(self, model):
        return [{"params": _not_in(model, ())}]


@MDL_METHODS.register("frozen")
class FrozenFeatures(MDLMethod):
    def param_groups(self, model):
        return [{"params": list(model.heads.parameters())}]

    def bn_train_mode(self) -> bool:
        return False  # the source statistics are part of the frozen features


@MDL_METHODS.register("ba2")
class BudgetAwareAdapters(MDLMethod):
    uses_switches = True

    def __init__(self, cfg):
        super().__init__(cfg)
        self.sharing_weight = self.m.sharing_weight

    def param_groups(self, model):
        own = [p for n, p in model.named_parameters()
               if "switches" not in n and (self.m.train_backbone or ".bns." in n or n.startswith("heads."))]
        return [{"params": own}, {"params": model.switch_parameters(), "lr": self.cfg.train.switch_lr,
                                  "weight_decay": 0.0}]

    def regularizer(self, model):
        usage, union, inter = weighted([b.filter_usage() for b in model.switched()], model.per_filter_params())
        budget = self.m.budget_weight * torch.relu(usage - self.m.budget).sum()
        share = SHARING.get(self.m.sharing)(union, inter, self.m.budget)
        scalars = {"union": float(union.detach()), "intersection": float(inter.detach()),
                   "sharing_term": float(share.detach()),
                   "sharing_weight": self.sharing_weight,
                   **{f"usage/{d}": float(u) for d, u in zip(self.cfg.source.data.domains, usage.detach())}}
        return budget + self.sharing_weight * share, scalars

    def after_step(self, model, scalars):
        if self.m.learnable_weight:
            self.sharing_weight += self.m.dual_lr * scalars["sharing_term"]
        project_budget(model, self.m.budget)

    def finish(self, model):
        project_budget(model, self.m.budget)

    def state_dict(self) -> dict[str, Any]:
        return {"sharing_weight": self.sharing_weight}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.sharing_weight = state["sharing_weight"]


@MDL_METHODS.register("budget_aware")
class BudgetAwarePruning(BudgetAwareAdapters):
    default_sharing = "union"


@torch.no_grad()
def project_budget(model: MultiDomainResNet, budget: float) -> None:
    """Every domain over its budget shifts all its latent switches down by the smallest common amount that brings its
    weighted usage to at most `budget` (its weakest filters go first; nothing changes for a domain within budget)."""
    blocks = model.switched()
    per_filter = model.per_filter_params()
    total = sum(b.switches.shape[1] * p for b, p in zip(blocks, per_filter))
    for d in range(model.domains):
        strength = torch.cat([(b.switches[d] if b.switches.dim() == 2 else b.switches[d].amax(1)) for b in blocks])
        weight = torch.cat([torch.full((b.switches.shape[1],), p / total) for b, p in zip(blocks, per_filter)])
        if float(weight[strength > 0].sum()) <= budget + 1e-9:
            continue
        order = strength.argsort(descending=True)
        fits = torch.cumsum(weight[order], 0) <= budget + 1e-9
        keep = int(fits.sum())  # the strongest `keep` filters fit in the budget
        cut = float(strength[order[keep]])  # the first that does not: shift it (and all weaker) to <= 0
        for b in blocks:
            b.switches[d] -= max(cut, 0.0) + 1e-6


def _check_catalogue() -> None:
    listed = {m.key for m in catalogue.MULTI_DOMAIN}
    if listed != set(MDL_METHODS.names()):
        raise ImportError(f"the multi-domain catalogue {sorted(listed)} and registry {MDL_METHODS.names()} disagree "
                          f"(mtlprune/core/catalogue.py)")


_check_catalogue()
