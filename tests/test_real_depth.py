"""A real-depth check: the Middlebury 2014 *motorcycle* pair that ships with scikit-image (ground-truth disparity,
invalid pixels `inf`) as metric depth through the NYU-v2 release's loading path, its invalid-pixel masking and the
depth metrics, against values derived by hand here with numpy.

Calibration (scikit-image's docstring for the 4× down-sampled pair): f = 994.978 px, baseline B = 193.001 mm,
doffs = 31.086 px; depth Z = f·B / (d + doffs) (Middlebury's formula), in metres.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from mtlprune.core.data import nyuv2
from mtlprune.core.metrics import DepthMeter

F_PX, BASELINE_MM, DOFFS_PX = 994.978, 193.001, 31.086


@pytest.fixture(scope="module")
def middlebury():
    from skimage import data  # scikit-image ships the pair (environment.yml)

    left, _, disparity = data.stereo_motorcycle()
    depth = np.where(np.isfinite(disparity), F_PX * BASELINE_MM / (disparity + DOFFS_PX) / 1000.0, 0.0)
    return left, disparity, depth.astype(np.float32)


def _release(root, left, depth):
    """One test view in the NYU-v2 release's layout (MTAN / LibMTL .npy folders): the real image and depth, no
    labels (-1) and no normals (0)."""
    for split in ("train", "val"):
        for name, arr in (("image", left.astype(np.float32) / 255), ("depth", depth[..., None]),
                          ("label", np.full(depth.shape, -1, dtype=np.int64)),
                          ("normal", np.zeros((*depth.shape, 3), dtype=np.float32))):
            (root / split / name).mkdir(parents=True, exist_ok=True)
            np.save(root / split / name / "0.npy", arr)
    return root


def test_the_calibrated_depth_is_the_scene_of_the_benchmark(middlebury):
    _, disparity, depth = middlebury
    invalid = ~np.isfinite(disparity)
    assert invalid.sum() > 10_000 and (depth[invalid] == 0).all()  # no ground truth: masked as the NYU-v2 layout does
    valid = depth[depth > 0]
    assert 2.0 < valid.min() < 2.2 and 4.9 < valid.max() < 5.1  # the motorcycle 2.1 m .. the back wall 5.0 m


def test_depth_metrics_on_real_depth_equal_the_hand_derived_values(middlebury, tmp_path):
    left, disparity, depth = middlebury
    split = nyuv2.load_split(_release(tmp_path, left, depth), "test")  # the release's loading path
    gt = split["depth"]
    assert gt.shape == (1, 1, *depth.shape) and torch.equal(gt[0, 0], torch.from_numpy(depth))
    d = depth[np.isfinite(disparity)].astype(np.float64)  # the pixels with ground truth, by hand

    def metrics(pred: torch.Tensor) -> dict[str, float]:
        meter = DepthMeter()
        meter.update(pred, {"depth": gt})
        return meter.compute()

    # a known perturbation: 10 % too far everywhere
    m = metrics(gt * 1.1)
    assert m["abs_err"] == pytest.approx(0.1 * d.mean(), rel=1e-5)
    assert m["rel_err"] == pytest.approx(0.1, rel=1e-5)
    assert m["delta1"] == m["delta2"] == m["delta3"] == 100.0
    # 40 % too far: outside δ1 (1.25), inside δ2 (1.5625)
    m = metrics(gt * 1.4)
    assert m["delta1"] == 0.0 and m["delta2"] == 100.0
    # the constant predictor at the mean valid depth (the collapse baseline's rule)
    c = float(d.mean())
    m = metrics(torch.full_like(gt, c))
    ratio = np.maximum(c / d, d / c)
    assert m["abs_err"] == pytest.approx(np.abs(c - d).mean(), rel=1e-5)
    assert m["rel_err"] == pytest.approx((np.abs(c - d) / d).mean(), rel=1e-5)
    for key, bound in (("delta1", 1.25), ("delta2", 1.25 ** 2), ("delta3", 1.25 ** 3)):
        assert m[key] == pytest.approx(100 * (ratio < bound).mean(), abs=1e-9)
    # an invalid pixel never counts, whatever is predicted there
    poisoned = (gt * 1.1).clone()
    poisoned[gt == 0] = 1e6
    assert metrics(poisoned) == metrics(gt * 1.1)
