"""Tiny-Taskonomy: the generator writes the release's layout and encodings, the one loader reads them back (exact
depth, labels and normals), bad files are named with their fix, and a run covers five tasks and six components."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest
import torch
from PIL import Image

from mtlprune.core import paths
from mtlprune.core.data import taskonomy as tk
from mtlprune.core.errors import DataError
from mtlprune.core.data.nyuv2 import RoomsSpec
from mtlprune.core.data.rooms import CLS, SceneParams, render_scene
from mtlprune.study.profiles import make_config
from mtlprune.core.identity import run_id

SPEC = RoomsSpec(n_train=25, n_test=5, height=24, width=24, seed=3)


@pytest.fixture(scope="module")
def generated(tmp_path_factory):
    return tk.generate(SPEC, tmp_path_factory.mktemp("tk") / "root", workers=1, progress=False)


def test_the_generator_writes_the_release_layout_with_the_tiny_split(generated):
    for split, buildings in tk.SPLITS.items():
        for b in buildings:
            assert (generated / "rgb" / "taskonomy" / b / "point_0_view_0_domain_rgb.png").exists()
    view = {d: generated / d / "taskonomy" / "hanson" / f"point_0_view_0_domain_{f}.png" for d, f in tk.DOMAINS.items()}
    assert view["segment_semantic"].name == "point_0_view_0_domain_segmentsemantic.png"
    modes = {d: Image.open(p).mode for d, p in view.items()}
    assert modes["rgb"] == "RGB" and modes["normal"] == "RGB" and modes["segment_semantic"] == "L"
    assert all(np.array(Image.open(view[d])).dtype == np.uint16 for d in ("depth_zbuffer", "keypoints2d",
                                                                        "edge_texture"))
    assert (len(tk.SPLITS["train"]), len(tk.SPLITS["val"]), len(tk.SPLITS["test"])) == (25, 5, 5)
    assert json.loads((generated / "meta.json").read_text())["views_per_building"] == {"train": 1, "val": 1,
                                                                                      "test": 1}


def test_the_loader_decodes_exactly_what_the_renderer_made():
    rng = np.random.default_rng(0)
    image, label, depth, normal = render_scene(rng, 24, 24, SceneParams())
    label[0, 0] = -1  # an unlabelled pixel
    payload = tk.encode_view(image, label, depth, normal)
    back = {}
    for key, arr in payload.items():  # through the PNG codec, as on disk
        buf = __import__("io").BytesIO()
        Image.fromarray(arr).save(buf, format="PNG")
        back[key] = np.array(Image.open(buf))
    assert {k: v.dtype for k, v in back.items()} == {k: v.dtype for k, v in payload.items()}
    seg = back["segment_semantic"]  # the release's encoding: raw 0 unlabelled, raw c + 1 for class c
    assert seg[0, 0] == tk.SEG_UNLABELLED == 0 and set(np.unique(seg)) <= set(range(18))
    assert (seg[label == CLS["chair"]] == tk.SEG_CLASSES.index("chair") + 1).all()
    assert (seg[label == CLS["wall"]] == 1).all()  # not a Taskonomy class: background, class 0
    classes = tk.decode_segmentation(seg, "view", "fix")
    assert classes[0, 0] == -1 and (classes[label == CLS["chair"]] == tk.SEG_CLASSES.index("chair")).all()
    valid = depth[..., 0] > 0
    zbuf = back["depth_zbuffer"]
    assert np.abs(zbuf[valid] / tk.DEPTH_UNITS - depth[..., 0][valid]).max() <= 0.5 / tk.DEPTH_UNITS + 1e-6
    assert (zbuf[~valid] == 65535).all()


def test_split_reading_and_targets(generated):
    train = tk.load_split(generated, "train")
    assert train["image"].shape == (25, 3, 24, 24) and train["semseg"].dtype == torch.int64
    assert set(train) == {"image", "semseg", "normal", "depth", "keypoints", "edges", "semseg_prior"}
    prior = train["semseg_prior"]  # the loss's class weights (the generator's semseg_prior_factor.npy), every sample
    assert prior.shape == (25, 17) and torch.equal(prior[0], prior[-1])
    assert torch.equal(prior[0], torch.from_numpy(np.load(generated / tk.PRIOR_FILE)))
    hist = torch.bincount(train["semseg"][train["semseg"] >= 0].ravel(), minlength=17).double()
    assert abs(float((hist / hist.sum() * prior[0].double()).sum()) - 1) < 1e-5  # E_p[w] = 1
    assert prior[0][hist == 0].min() > prior[0][hist.argmax()]  # rare classes weigh more
    assert int(train["semseg"].min()) >= -1 and int(train["semseg"].max()) < 17
    n = train["normal"].norm(dim=1)
    assert torch.allclose(n[n > 0], torch.ones_like(n[n > 0]), atol=1e-5)
    assert (train["depth"] >= 0).all() and (train["depth"] > 0).float().mean() > 0.5
    for k in ("keypoints", "edges"):  # the papers' units: [-1, 1], spread over it
        assert float(train[k].min()) >= -1 and float(train[k].max()) <= 1 and float(train[k].std()) > 0.05
    test = tk.load_split(generated, "test")
    assert test["image"].shape[0] == 5 and not torch.equal(test["image"][0], train["image"][0])


def test_the_decoding_is_the_papers_loaders():
    """Values taken from the AdaShare / DiSparse / AdapMTL Taskonomy loader (`taskonomy_dataloader.py`):
    segmentation raw 0 is unlabelled and raw 1..17 are classes 0..16 (`img[img == 0] = 1; img = img - 1` with the
    mask `img > 0.1`); keypoints2d and edge_texture are v / 2^16 clipped to [0, 0.005] and [0, 0.08], then rescaled
    onto [-1, 1] (`rescale_image(new_scale=(-1, 1), current_scale=(0, r))`)."""
    seg = tk.decode_segmentation(np.array([[0, 1, 2, 17]], dtype=np.uint8), "view", "fix")
    assert seg.tolist() == [[-1, 0, 1, 16]]
    with pytest.raises(DataError, match="above 17"):
        tk.decode_segmentation(np.array([[18]], dtype=np.uint8), "view", "fix")
    keypoints = tk.decode_range(np.array([0, 164, 327, 328, 20000], dtype=np.uint16), tk.RANGE["keypoints2d"])
    assert np.allclose(keypoints, [-1.0, 327 * 0 + 164 / 65536 / 0.005 * 2 - 1, 0.9958, 1.0, 1.0], atol=1e-4)
    assert abs(float(keypoints[2]) - 0.99583) < 1e-4  # raw 327 -> 0.9958 (the standardisation gave 2.77)
    edges = tk.decode_range(np.array([0, 2621, 5243, 20000, 65535], dtype=np.uint16), tk.RANGE["edge_texture"])
    assert np.allclose(edges, [-1.0, 2621 / 65536 / 0.08 * 2 - 1, 1.0, 1.0, 1.0], atol=1e-3)
    assert float(edges[3]) == 1.0  # raw 20000 -> 1.0 (the standardisation gave 17.9)


def test_image_derived_domains_follow_the_release_definitions():
    step = np.zeros((16, 16), dtype=np.float32)
    step[:, 8:] = 1.0
    edge = tk.edge_strength(step)
    assert set(np.argmax(edge, axis=1)) <= {7, 8} and edge[:, :4].max() < 0.05 * edge.max()
    blob = np.zeros((21, 21), dtype=np.float32)
    blob[8:13, 8:13] = 1.0
    resp = tk.keypoint_response(blob)
    assert np.unravel_index(resp.argmax(), resp.shape) == (10, 10)  # the blob's centre


def _copy(generated, tmp_path):
    import shutil

    root = tmp_path / "copy"
    shutil.copytree(generated, root)
    return root


def test_missing_and_malformed_files_are_named_with_the_fix(generated, tmp_path):
    root = _copy(generated, tmp_path)
    f = root / "depth_zbuffer" / "taskonomy" / "hanson" / "point_0_view_0_domain_depth_zbuffer.png"
    f.unlink()
    with pytest.raises(DataError, match=r"missing: .*point_0_view_0_domain_depth_zbuffer\.png[\s\S]*Fix: Place"):
        tk.load_split(root, "train")
    Image.fromarray(np.zeros((24, 24), dtype=np.uint8)).save(f)  # 8-bit where the release has 16-bit
    with pytest.raises(DataError, match=r"malformed Tiny-Taskonomy file .*depth_zbuffer\.png: uint8"):
        tk.load_split(root, "train")
    f.unlink()
    Image.fromarray(np.full((24, 24), 65535, dtype=np.uint16)).save(f)
    seg = root / "segment_semantic" / "taskonomy" / "hanson" / "point_0_view_0_domain_segmentsemantic.png"
    Image.fromarray(np.full((24, 24), 40, dtype=np.uint8)).save(seg)
    with pytest.raises(DataError, match=r"raw label values \[40\] above 17 \(0 is unlabelled"):
        tk.load_split(root, "train")
    with pytest.raises(DataError, match=r"building folder .*ihlen does not exist"):
        import shutil

        shutil.rmtree(root / "rgb" / "taskonomy" / "ihlen")
        tk.load_split(root, "test")


def test_taskonomy_configs_name_five_tasks_and_keep_nyu_ids_apart():
    nyu = make_config("smoke", "adapmtl", 0.9)
    cfg = make_config("smoke", "adapmtl", 0.9, overrides={"data.dataset": "taskonomy"})
    assert cfg.tasks == ("semseg", "normal", "depth", "keypoints", "edges") and cfg.dense.tasks == cfg.tasks
    assert run_id(cfg) != run_id(nyu) and run_id(cfg.dense) != run_id(nyu.dense)
    quick = make_config("quick", "dense", overrides={"data.dataset": "taskonomy"})
    assert quick.train.iterations == make_config("quick", "dense").train.iterations and quick.data.synthetic.height == 32


@pytest.mark.slow
def test_cli_runs_adapmtl_on_taskonomy_with_five_tasks_and_six_components():
    proc = subprocess.run([sys.executable, "-m", "mtlprune", "run", "--profile", "smoke", "--dataset", "taskonomy",
                           "--method", "adapmtl", "--sparsity", "0.9", "--seed", "0", "--no-progress", "--json"],
                          capture_output=True, text=True, cwd=paths.REPO_ROOT, timeout=300)
    assert proc.returncode == 0, proc.stderr
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    assert set(out["metrics"]) == {"semseg", "normal", "depth", "keypoints", "edges"}
    assert set(out["sparsity"]["components"]) == {"backbone", "semseg", "normal", "depth", "keypoints", "edges"}
    assert set(out["delta_t"]) == {"semseg", "normal", "depth", "keypoints", "edges", "mean"}
    assert abs(out["sparsity"]["overall"] - 0.9) < 0.01
