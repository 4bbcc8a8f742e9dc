"""Loss-weighting axis: equal is the plain sum; uncertainty and DWA follow their formulas; bad parameters are named."""

from __future__ import annotations

import math

import pytest
import torch

from mtlprune.core.weighting import WEIGHTINGS, build_weighting

TASKS = ("seg", "depth", "normal")


def _losses(a, b, c):
    return {"seg": torch.tensor(float(a)), "depth": torch.tensor(float(b)), "normal": torch.tensor(float(c))}


def test_equal_is_the_plain_sum():
    total, w = build_weighting("equal", TASKS, {}, 100)(_losses(1, 2, 3), 0)
    assert float(total) == 6.0 and w == {"seg": 1.0, "depth": 1.0, "normal": 1.0}


def test_uncertainty_formula_and_learnable_log_variances():
    wt = build_weighting("uncertainty", TASKS, {"init": 0.0}, 100)
    total, w = wt(_losses(1, 2, 3), 0)
    assert float(total.detach()) == pytest.approx(0.5 * 6)  # s = 0: ½·L each, plus ½·0
    assert w["seg"] == pytest.approx(0.5)
    total.backward()
    # d/ds (½ e^{-s} L + ½ s) at s = 0 is ½(1 − L)
    assert wt.log_var.grad.tolist() == pytest.approx([0.0, -0.5, -1.0])
    assert sum(p.numel() for p in wt.parameters()) == 3


def test_dwa_weights_follow_the_loss_ratio_softmax():
    wt = build_weighting("dwa", TASKS, {"temperature": 2.0, "period": 1}, 100)
    _, w = wt(_losses(1, 1, 1), 0)
    assert w == {"seg": 1.0, "depth": 1.0, "normal": 1.0}  # first periods: λ = 1
    _, w = wt(_losses(2, 1, 0.5), 1)  # second period done: ratios 2, 1, 0.5
    ratios = torch.tensor([2.0, 1.0, 0.5])
    expected = 3 * torch.softmax(ratios / 2.0, 0)
    assert [w[t] for t in TASKS] == pytest.approx(expected.tolist())
    assert sum(w.values()) == pytest.approx(3.0)
    assert w["seg"] > w["depth"] > w["normal"]  # the task whose loss rose gets the most weight


def test_registry_and_errors():
    assert {"equal", "uncertainty", "dwa"} <= set(WEIGHTINGS.names())
    with pytest.raises(ValueError, match="'temp'.*valid: temperature, period"):
        build_weighting("dwa", TASKS, {"temp": 1}, 100)
    with pytest.raises(ValueError, match="unknown loss weighting 'gradnorm'"):
        build_weighting("gradnorm", TASKS, {}, 100)
    assert not math.isnan(float(build_weighting("uncertainty", TASKS, {}, 100)(_losses(1, 1, 1), 0)[0].detach()))
