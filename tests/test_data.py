"""Generator determinism and geometry, the NYU-v2 loader's layout, splits and errors."""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
import pytest

from mtlprune.core.errors import DataError
from mtlprune.core.data.nyuv2 import RoomsSpec, generate, load_split
from mtlprune.core.data.rooms import render_scene

SPEC = RoomsSpec(n_train=12, n_test=4, height=24, width=32, seed=3)


def _digest(root: Path) -> str:
    h = hashlib.sha256()
    for p in sorted(root.rglob("*.npy")):
        h.update(p.relative_to(root).as_posix().encode())
        h.update(p.read_bytes())
    return h.hexdigest()


def test_generator_is_deterministic_and_independent_of_workers(tmp_path):
    a = generate(SPEC, tmp_path / "a", workers=1, progress=False)
    b = generate(SPEC, tmp_path / "b", workers=2, progress=False)
    assert _digest(a) == _digest(b)
    c = generate(RoomsSpec(n_train=12, n_test=4, height=24, width=32, seed=4), tmp_path / "c", workers=1,
                 progress=False)
    assert _digest(a) != _digest(c)


def test_generator_writes_the_mtan_layout(tmp_path):
    root = generate(SPEC, tmp_path / "d", workers=1, progress=False)
    for folder, n in (("train", 12), ("val", 4)):
        for name in ("image", "label", "depth", "normal"):
            assert sorted(int(p.stem) for p in (root / folder / name).glob("*.npy")) == list(range(n))
    img = np.load(root / "train/image/0.npy")
    assert img.shape == (24, 32, 3) and 0 <= img.min() and img.max() <= 1
    assert np.load(root / "train/depth/0.npy").shape == (24, 32, 1)
    lab = np.load(root / "train/label/0.npy")
    assert lab.shape == (24, 32) and set(np.unique(lab)) <= set(range(-1, 13))


def test_normals_agree_with_the_depth_gradient():
    """Back-project the depth map and take the cross product of its tangents: on smooth surfaces it must match the
    ground-truth normal (both in the camera frame)."""
    h, w, hfov = 120, 160, 62.0
    errors = []
    for seed in range(4):
        _, label, depth, normal = render_scene(np.random.default_rng(seed), h, w)
        d = depth[..., 0].astype(np.float64)
        fx = (w / 2) / np.tan(np.radians(hfov) / 2)
        u, v = np.meshgrid(np.arange(w) + 0.5, np.arange(h) + 0.5)
        pts = np.stack([(u - w / 2) / fx * d, (v - h / 2) / fx * d, d], -1)
        du = pts[1:-1, 2:] - pts[1:-1, :-2]
        dv = pts[2:, 1:-1] - pts[:-2, 1:-1]
        n = np.cross(du, dv)
        n /= np.linalg.norm(n, axis=-1, keepdims=True) + 1e-12
        gt = normal[1:-1, 1:-1].astype(np.float64)
        # smooth interior: the 3x3 neighbourhood is valid and shares one normal
        nb = [normal[1 + dy:h - 1 + dy, 1 + dx:w - 1 + dx] for dy in (-1, 0, 1) for dx in (-1, 0, 1)]
        flat = np.all([np.abs(x - gt).sum(-1) < 1e-4 for x in nb], axis=0)
        flat &= np.all([depth[1 + dy:h - 1 + dy, 1 + dx:w - 1 + dx, 0] > 0 for dy in (-1, 0, 1)
                        for dx in (-1, 0, 1)], axis=0)
        flat &= np.abs(gt).sum(-1) > 0
        cos = np.abs((n * gt).sum(-1))[flat]
        errors.append(np.degrees(np.arccos(np.clip(cos, -1, 1))))
        # normals face the camera: the view ray and the normal point against each other
        rays = np.stack([(u - w / 2) / fx, (v - h / 2) / fx, np.ones_like(u)], -1)[1:-1, 1:-1]
        assert np.all((rays * gt).sum(-1)[flat] < 0)
    err = np.concatenate(errors)
    assert err.size > 10000
    assert np.median(err) < 0.5 and np.percentile(err, 95) < 3.0


def test_labels_do_not_follow_colour():
    """Colour must not give the class away: the mean colour of a class varies a lot across scenes."""
    per_class: dict[int, list[np.ndarray]] = {}
    for seed in range(30):
        img, label, _, _ = render_scene(np.random.default_rng(seed), 24, 32)
        for c in (4, 11):  # floor, wall
            if (label == c).sum() > 20:
                per_class.setdefault(c, []).append(img[label == c].mean(0))
    for c, colours in per_class.items():
        assert np.std(np.stack(colours), axis=0).mean() > 0.08, f"class {c} has a near-constant colour"


def test_splits_partition_train_and_test_is_the_val_folder(tmp_path):
    root = generate(SPEC, tmp_path / "e", workers=1, progress=False)
    tr = load_split(root, "train", val_fraction=0.25, split_seed=0)
    va = load_split(root, "val", val_fraction=0.25, split_seed=0)
    te = load_split(root, "test")
    assert tr["image"].shape[0] == 9 and va["image"].shape[0] == 3 and te["image"].shape[0] == 4
    assert tr["image"].shape[1:] == (3, 24, 32) and tr["depth"].shape[1] == 1 and tr["label"].dtype.is_floating_point is False
    rows = lambda x: {tuple(r) for r in x["image"].reshape(x["image"].shape[0], -1)[:, :8].tolist()}  # noqa: E731
    assert not rows(tr) & rows(va)
    again = load_split(root, "val", val_fraction=0.25, split_seed=0)
    assert (again["image"] == va["image"]).all()


def test_missing_data_names_generate_command_and_layout(tmp_path):
    with pytest.raises(DataError) as err:
        load_split(tmp_path / "nothing", "train")
    msg = str(err.value)
    assert "python -m mtlprune generate" in msg and "<root>/train/{image,label,depth,normal}/<i>.npy" in msg


def test_malformed_file_is_named(tmp_path):
    root = generate(SPEC, tmp_path / "f", workers=1, progress=False)
    bad = root / "train/depth/5.npy"
    bad.write_bytes(b"not a numpy file")
    with pytest.raises(DataError, match=str(bad)):
        load_split(root, "train", val_fraction=0.0)
    np.save(bad, np.zeros((24, 32, 2), np.float32))
    with pytest.raises(DataError, match="5.npy: shape"):
        load_split(root, "train", val_fraction=0.0)
