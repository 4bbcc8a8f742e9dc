"""Budget and parameter-sharing terms on the per-domain switches (reconstructed: budget_mdl.md §3.2; the papers'
exact equations were not available).

All terms use the *weighted* usage of a domain: the share of the switchable weights its used filters control (a
filter of block b controls p_b weights: its conv1 filter and its conv2 input slice), so a budget reads directly as a
fraction of those weights. With s_d the STE-binarised filter usage of domain d:

- budget (BA², per domain): usage_d − β ≤ 0, held exactly by the projection in `methods.project_budget`.
- `union`: U = Σ p·(1 − Π_d (1 − s_d)) / P, the weights some domain uses (what survives removal); term max(0, U − β).
- `intersection`: I = Σ p·Π_d s_d / P, the weights every domain uses; term max(0, β − I) (share up to the budget).
- `jaccard`: 1 − I / U (overlap of the domains' sets whatever their size).
- `none`: no sharing term (BA²; the union it would keep is still reported).
"""

from __future__ import annotations

import torch

from ..registry import Registry

SHARING: Registry = Registry("sharing term")


def weighted(usages: list[torch.Tensor], per_filter: list[int]) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(per-domain usage (D,), union U, intersection I), each a fraction of the switchable weights."""
    total = sum(u.shape[1] * p for u, p in zip(usages, per_filter))
    dom = sum(u.sum(1) * p for u, p in zip(usages, per_filter)) / total
    union = sum((1 - torch.prod(1 - u, 0)).sum() * p for u, p in zip(usages, per_filter)) / total
    inter = sum(torch.prod(u, 0).sum() * p for u, p in zip(usages, per_filter)) / total
    return dom, union, inter


@SHARING.register("none")
def no_sharing(union: torch.Tensor, inter: torch.Tensor, budget: float) -> torch.Tensor:
    return union.new_zeros(())


@SHARING.register("union")
def union_term(union, inter, budget):
    return torch.relu(union - budget)


@SHARING.register("intersection")
def intersection_term(union, inter, budget):
    return torch.relu(budget - inter)


@SHARING.register("jaccard")
def jaccard_term(union, inter, budget):
    return 1 - inter / union.clamp_min(1e-8)
