"""The k-th smallest slack of AdapMTL's projection (`pruning.slack`): the fast CPU path returns exactly the k-th value of
the full computation, for any weights, offsets and k, and needs its fallback only at degenerate inputs."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from mtlprune.core.pruning import slack
from mtlprune.core.pruning.soft_threshold import FlatPlan

SIZES = (26_000, 4_000, 17_000, 9_000)  # above the fast path's floor (4 × SAMPLE weights), four groups


def _plan(values: torch.Tensor, group_of: tuple[int, ...] = (0, 1, 2, 3, 0)) -> FlatPlan:
    """A plan over plain parameters (five layers, the first group split in two, as a backbone's layers are)."""
    sizes = [SIZES[0] // 2, SIZES[1], SIZES[2], SIZES[3], SIZES[0] - SIZES[0] // 2]
    chunks = values.split(sizes)
    params = [nn.Parameter(c.reshape(-1, 10).clone()) for c in chunks]
    thresholds = [nn.Parameter(torch.tensor(0.0)) for _ in range(4)]
    plan = FlatPlan([nn.Identity() for _ in params], params, thresholds, group_of)
    plan.bind()
    return plan


def _weights(kind: str, gen: torch.Generator) -> torch.Tensor:
    n = sum(SIZES)
    if kind == "normal":
        return torch.randn(n, generator=gen) * 0.05
    if kind == "ties":  # few distinct magnitudes: many equal slacks around every k
        return (torch.randint(-3, 4, (n,), generator=gen) * 0.01).float()
    if kind == "clamped":  # exact zeros and magnitudes at 1 or above meet the clamp at both ends
        w = torch.randn(n, generator=gen) * 0.05
        w[torch.rand(n, generator=gen) < 0.3] = 0.0
        w[torch.rand(n, generator=gen) < 0.05] = 2.0
        return w
    raise ValueError(kind)


@pytest.mark.parametrize("kind", ["normal", "ties", "clamped"])
def test_kth_slack_is_exactly_the_full_kthvalue(kind, monkeypatch):
    gen = torch.Generator().manual_seed(0)
    plan = _plan(_weights(kind, gen))
    full = slack.slack_all
    n = plan.flat.numel()
    fallbacks = []
    monkeypatch.setattr(slack, "slack_all", lambda *a: fallbacks.append(1) or full(*a))
    for spread in (0.0, 1.0, 6.0):
        offsets = (torch.randn(4, generator=gen) * spread - 3.0).tolist()
        for k in (1, 7, n // 1000, n // 10, n // 2, (9 * n) // 10, n - 3, n):
            assert slack.kth_slack(plan, offsets, k) == float(full(plan, offsets).kthvalue(k).values), (spread, k)
    if kind == "normal":  # the bracket holds for ordinary weights: no full computation was needed
        assert not fallbacks


def test_the_full_path_cuda_takes_agrees_with_the_fast_path():
    gen = torch.Generator().manual_seed(1)
    plan = _plan(_weights("normal", gen))
    offsets = [-3.0, -2.0, -4.0, -3.5]
    for k in (100, int(0.8 * plan.flat.numel())):
        assert float(slack.kth_smallest(slack.slack_all(plan, offsets), k)) == slack.kth_slack(plan, offsets, k)
