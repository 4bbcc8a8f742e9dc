"""Metrics against hand-computed cases, and Δ_T/Δp against every row of the AdapMTL paper's table."""

from __future__ import annotations

import math

import pytest
import torch

from mtlprune.core.tasks import TaskMeters
from mtlprune.core.metrics import delta_p, delta_t


def _onehot_logits(labels: torch.Tensor, n: int = 13) -> torch.Tensor:
    return torch.nn.functional.one_hot(labels.clamp_min(0), n).permute(0, 3, 1, 2).float()


def test_miou_and_pixacc_from_one_global_confusion_matrix():
    # 1 image, 2x3 pixels; gt classes 0,0,1 / 1,2,-1 ; prediction 0,1,1 / 1,2,2
    gt = torch.tensor([[[0, 0, 1], [1, 2, -1]]])
    pred = torch.tensor([[[0, 1, 1], [1, 2, 2]]])
    m = TaskMeters(["seg"])
    m.update({"seg": _onehot_logits(pred)}, {"label": gt})
    out = m.compute()["seg"]
    # valid pixels: 5; correct: 4 -> 80 %. IoU: class0 1/2, class1 2/3, class2 1/1 -> mean 0.7222
    assert out["pixacc"] == pytest.approx(80.0)
    assert out["miou"] == pytest.approx(100 * (0.5 + 2 / 3 + 1) / 3)


def test_miou_is_global_not_per_image_mean():
    gt1, pr1 = torch.tensor([[[0, 0]]]), torch.tensor([[[0, 0]]])
    gt2, pr2 = torch.tensor([[[1, 1]]]), torch.tensor([[[0, 1]]])
    m = TaskMeters(["seg"])
    m.update({"seg": _onehot_logits(pr1)}, {"label": gt1})
    m.update({"seg": _onehot_logits(pr2)}, {"label": gt2})
    # global confusion: class0 TP2 FP1 -> 2/3; class1 TP1 FN1 -> 1/2
    assert m.compute()["seg"]["miou"] == pytest.approx(100 * (2 / 3 + 1 / 2) / 2)


def test_depth_metrics_on_valid_pixels_only():
    gt = torch.tensor([[[[1.0, 2.0, 4.0, 0.0]]]])
    pr = torch.tensor([[[[1.1, 3.0, 4.0, 9.0]]]])
    m = TaskMeters(["depth"])
    m.update({"depth": pr}, {"depth": gt})
    d = m.compute()["depth"]
    assert d["abs_err"] == pytest.approx((0.1 + 1.0 + 0.0) / 3)
    assert d["rel_err"] == pytest.approx((0.1 + 0.5 + 0.0) / 3)
    # ratios 1.1, 1.5, 1.0 -> <1.25: 2/3, <1.5625: 3/3
    assert d["delta1"] == pytest.approx(200 / 3)
    assert d["delta2"] == pytest.approx(100.0)


def test_normal_angles_mean_median_and_within():
    angles = [5.0, 15.0, 25.0, 40.0]
    gt = torch.tensor([[0.0, 0.0, 1.0]] * 4 + [[0.0, 0.0, 0.0]])  # last pixel invalid
    pr = [[math.sin(math.radians(a)), 0.0, math.cos(math.radians(a))] for a in angles] + [[1.0, 0.0, 0.0]]
    as_map = lambda v: torch.tensor(v).T.reshape(1, 3, 1, 5)  # noqa: E731
    m = TaskMeters(["normal"])
    m.update({"normal": as_map(pr)}, {"normal": as_map(gt.tolist())})
    n = m.compute()["normal"]
    assert n["angle_mean"] == pytest.approx(sum(angles) / 4, abs=1e-4)
    assert n["angle_median"] == pytest.approx(15.0, abs=0.02)  # histogram median: lower middle value, 0.01° bins
    assert n["within_11_25"] == pytest.approx(25.0)
    assert n["within_22_5"] == pytest.approx(50.0)
    assert n["within_30"] == pytest.approx(75.0)


# AdapMTL paper, NYU-v2 MobileNetV2 at 90 % sparsity (shared/research/adapmtl.md §3.1): printed metrics and Δ columns.
DENSE = {"seg": {"miou": 19.94, "pixacc": 48.71},
         "normal": {"angle_mean": 17.85, "angle_median": 16.21, "within_11_25": 29.77, "within_22_5": 72.19,
                    "within_30": 86.19},
         "depth": {"abs_err": 0.64, "rel_err": 0.24, "delta1": 58.93, "delta2": 86.27, "delta3": 96.16}}
ROWS = {  # name: (seg metrics, normal metrics, depth metrics, ΔT1, ΔT2, ΔT3, ΔT)
    "SNIP": ((18.96, 46.93), (18.33, 16.97, 28.93, 71.21, 85.78), (0.64, 0.25, 56.75, 85.71, 95.33),
             -8.57, -12.03, -9.38, -9.99),
    "LTH": ((19.14, 47.25), (17.67, 16.32, 29.67, 72.15, 86.22), (0.65, 0.25, 57.68, 85.89, 96.13),
            -7.01, -0.03, -8.32, -5.12),
    "IMP": ((18.76, 48.12), (18.71, 16.68, 29.63, 71.76, 85.91), (0.64, 0.23, 59.75, 86.52, 96.31),
            -7.13, -9.11, 6.00, -3.41),
    "DiSparse": ((19.87, 48.83), (17.92, 16.79, 29.87, 71.76, 85.64), (0.65, 0.24, 58.42, 85.72, 96.28),
                 -0.10, -4.87, -2.94, -2.64),
    "AdapMTL w/o adaptive thresholds": ((18.93, 47.51), (18.16, 16.87, 28.37, 71.53, 86.63),
                                        (0.65, 0.24, 58.26, 85.82, 95.92), -7.53, -10.91, -3.47, -7.30),
    "AdapMTL": ((20.16, 49.14), (17.53, 15.96, 30.16, 72.36, 86.51), (0.64, 0.24, 59.03, 86.57, 96.38),
                1.99, 5.25, 0.75, 2.66),
}


@pytest.mark.parametrize("name", sorted(ROWS))
def test_delta_t_reproduces_every_row_of_the_adapmtl_table(name):
    seg, nor, dep, d1, d2, d3, dt = ROWS[name]
    metrics = {"seg": dict(zip(DENSE["seg"], seg)), "normal": dict(zip(DENSE["normal"], nor)),
               "depth": dict(zip(DENSE["depth"], dep))}
    got = delta_t(metrics, DENSE)
    assert round(got["seg"], 2) == pytest.approx(d1, abs=0.011)
    assert round(got["normal"], 2) == pytest.approx(d2, abs=0.011)
    assert round(got["depth"], 2) == pytest.approx(d3, abs=0.011)
    # the paper averages its rounded per-task values
    assert round((d1 + d2 + d3) / 3, 2) == pytest.approx(dt, abs=0.011)
    assert got["mean"] == pytest.approx((got["seg"] + got["normal"] + got["depth"]) / 3)


def test_delta_p_is_the_mean_within_task_and_can_differ_in_sign():
    ref = {"seg": {"miou": 10.0, "pixacc": 50.0},
           "depth": {"abs_err": 1.0, "rel_err": 0.5, "delta1": 50.0, "delta2": 80.0, "delta3": 90.0}}
    run = {"seg": {"miou": 11.0, "pixacc": 50.0},  # +10 % on one metric
           "depth": {"abs_err": 1.0, "rel_err": 0.5, "delta1": 50.0, "delta2": 80.0, "delta3": 90.0}}
    assert delta_t(run, ref)["seg"] == pytest.approx(10.0)
    assert delta_p(run, ref)["seg"] == pytest.approx(5.0)
    assert delta_t(run, ref)["mean"] == pytest.approx(5.0)
    worse = {"seg": {"miou": 12.0, "pixacc": 50.0},
             "depth": {"abs_err": 1.1, "rel_err": 0.5, "delta1": 50.0, "delta2": 80.0, "delta3": 90.0}}
    # Δ_T: (20 - 10)/2 = +5 ; Δp: (10 - 2)/2 = +4 ; signs agree here, magnitudes differ
    assert delta_t(worse, ref)["mean"] == pytest.approx(5.0)
    assert delta_p(worse, ref)["mean"] == pytest.approx(4.0)


def test_delta_against_zero_reference_is_nan_unless_equal():
    ref = {"seg": {"miou": 0.0, "pixacc": 50.0}}
    assert delta_t({"seg": {"miou": 0.0, "pixacc": 50.0}}, ref)["seg"] == 0.0
    assert math.isnan(delta_t({"seg": {"miou": 1.0, "pixacc": 50.0}}, ref)["seg"])
