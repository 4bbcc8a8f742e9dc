"""Tiny-Taskonomy in its released on-disk layout: reading, validation, and writing generated buildings in that layout.

On disk (the layout of the public `tiny` download, see `data/README.md`)::

    <root>/<domain>/taskonomy/<building>/point_<p>_view_<v>_domain_<file domain>.png

for the six domains this study reads: `rgb` (8-bit RGB), `segment_semantic` (file domain `segmentsemantic`, 8-bit class
index), `normal` (8-bit RGB, 127-centred), `depth_zbuffer` (16-bit, 1/512 m), `keypoints2d` and `edge_texture` (16-bit).
Splits are whole buildings: the tiny split's 25 train, 5 val and 5 test buildings (`SPLITS`). Nothing is ever chosen
on the test buildings.

Decoding (what the tasks see): as the AdaShare / DiSparse / AdapMTL loaders decode the release (checked against their
code; a test pins the values), and the choices where the papers are silent:
- segment_semantic: raw 0 is unlabelled (ignored, loaded as -1); raw 1..17 are the 17 classes 0..16 (class 0 =
  background, AdaShare/DiSparse's 17-class head); a raw value above 17 is an error.
- normal: n = 2·v/255 − 1 per channel (camera frame, 127 = 0); a pixel whose decoded vector is not near unit length
  (|‖n‖ − 1| > 0.25, e.g. the release's black no-data pixels) is invalid (0, 0, 0).
- depth_zbuffer: metres = v / 512; valid where v < 2¹³ (16 m), the mask of the common Taskonomy loaders; the no-reading
  value 65535 falls outside it. Invalid depth is 0, as in the NYU-v2 layout.
- the segmentation loss is cross-entropy weighted per class by `semseg_prior_factor.npy` (17 weights) as in
  AdaShare/DiSparse/AdapMTL; the file is read from the root when present (the one those repositories ship), else
  computed from the train buildings' label histogram p as w_c ∝ 1 / ((1 − λ)·p_c + λ/17), λ = 0.5, E_p[w] = 1 (the
  generator writes it this way). Every sample carries the 17 weights (`semseg_prior`), so the loss needs no state.
- keypoints2d and edge_texture: v / 2¹⁶ clipped to [0, r] and mapped linearly onto [−1, 1], with r = 0.005
  (keypoints) and 0.08 (edges), as those loaders do (raw 327 → 0.9958, raw 20000 → 1.0): their metric, the mean
  absolute error, is in the papers' units.
- Where this study deviates from those loaders: depth stays in metres (v / 512, valid below 2¹³) where they take
  log(1 + v) / log(2¹⁶) with the mask v < 64500; no random scaling or crops (the generated views are small).

The generator renders each view with the procedural room renderer (`rooms`), so depth, normals and labels are exact per
pixel, and computes the two image-derived domains from the rendered RGB as the release defines them: `edge_texture`
is the Canny edge strength without non-maximum suppression (Gaussian-smoothed gradient magnitude of the grey image),
`keypoints2d` the SURF detector's response (the determinant of the Gaussian Hessian, positive part, over two scales).
Their 16-bit gains put the generated values in the ranges the decoding above maps onto [−1, 1]; labelled pixels are
written as class + 1 and unlabelled ones as 0, the release's encoding.
"""

from __future__ import annotations

import functools
import hashlib
import json
from dataclasses import asdict
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image

from ..errors import DataError
from .nyuv2 import RoomsSpec
from .rooms import CLS, render_scene
from .writing import regenerate_fix, write_dataset

# The tiny split (Taskonomy's splits for the "tiny" subset): 25 / 5 / 5 buildings.
SPLITS: dict[str, tuple[str, ...]] = {
    "train": ("hanson", "merom", "klickitat", "onaga", "leonardo", "marstons", "newfields", "pinesdale", "lakeville",
              "cosmos", "benevolence", "pomaria", "tolstoy", "shelbyville", "allensville", "wainscott", "beechwood",
              "coffeen", "stockman", "hiteman", "woodbine", "lindenwood", "forkland", "mifflinburg", "ranchester"),
    "val": ("wiconisco", "corozal", "collierville", "markleeville", "darden"),
    "test": ("ihlen", "muleshoe", "uvalda", "noxapater", "mcdade"),
}
# folder name -> the domain written in the file name
DOMAINS: dict[str, str] = {"rgb": "rgb", "segment_semantic": "segmentsemantic", "normal": "normal",
                           "depth_zbuffer": "depth_zbuffer", "keypoints2d": "keypoints2d",
                           "edge_texture": "edge_texture"}
SEG_CLASSES: tuple[str, ...] = (
    "background", "bottle", "chair", "couch", "potted plant", "bed", "dining table", "toilet", "tv", "microwave",
    "oven", "toaster", "sink", "refrigerator", "book", "clock", "vase")
NUM_SEG_CLASSES = len(SEG_CLASSES)  # 17
SEG_UNLABELLED = 0  # the raw value of an unlabelled pixel; raw c + 1 is class c
DEPTH_UNITS = 512.0  # values per metre
DEPTH_VALID_BELOW = 2 ** 13
PRIOR_FILE = "semseg_prior_factor.npy"  # AdaShare/DiSparse's class weights of the segmentation loss, next to the domains
PRIOR_MIX = 0.5  # λ of the rebalancing weights w_c ∝ 1 / ((1 − λ)·p_c + λ/17), normalised so E_p[w] = 1
RANGE = {"keypoints2d": 0.005, "edge_texture": 0.08}  # v / 2^16 is clipped to [0, r], then mapped onto [-1, 1]
ENCODING = 2  # 1: raw 255 unlabelled, raw c = class c, keypoints/edges standardised; 2: the papers' loaders' decoding
# Generated: 16-bit gains of the image-derived domains (edge strength and Hessian response of a [0, 1] grey image)
_EDGE_GAIN = 48000.0
_KEYPOINT_GAIN = 300000.0
# The room renderer's NYU-13 classes that are Taskonomy classes; every other class is background
_FROM_ROOMS = {CLS["bed"]: SEG_CLASSES.index("bed"), CLS["books"]: SEG_CLASSES.index("book"),
               CLS["chair"]: SEG_CLASSES.index("chair"), CLS["sofa"]: SEG_CLASSES.index("couch"),
               CLS["table"]: SEG_CLASSES.index("dining table"), CLS["tv"]: SEG_CLASSES.index("tv")}
LAYOUT_HELP = (
    "Expected layout (the Tiny-Taskonomy release, see data/README.md):\n"
    "  <root>/<domain>/taskonomy/<building>/point_<p>_view_<v>_domain_<file domain>.png\n"
    "  domains rgb, segment_semantic (file domain segmentsemantic), normal, depth_zbuffer, keypoints2d, edge_texture;\n"
    "  the tiny split's buildings: " + ", ".join(f"{k} {len(v)}" for k, v in SPLITS.items()))


def dirname(spec: RoomsSpec) -> str:
    blob = json.dumps({"dataset": "taskonomy", "encoding": ENCODING, **asdict(spec)}, sort_keys=True)
    return f"taskonomy-rooms-{spec.height}x{spec.width}-{hashlib.sha256(blob.encode()).hexdigest()[:10]}"


def views_per_building(spec: RoomsSpec) -> dict[str, int]:
    """`n_train` views spread over the train buildings; `n_test` over the test buildings and again over val."""
    per = lambda n, split: max(1, -(-n // len(SPLITS[split])))  # noqa: E731 - ceil division
    return {"train": per(spec.n_train, "train"), "val": per(spec.n_test, "val"), "test": per(spec.n_test, "test")}


# ---------------------------------------------------------------------------------------------------------------------
# Image-derived domains, as the release defines them
# ---------------------------------------------------------------------------------------------------------------------
def _gauss(img: np.ndarray, sigma: float) -> np.ndarray:
    r = max(1, int(round(3 * sigma)))
    k = np.exp(-0.5 * (np.arange(-r, r + 1) / sigma) ** 2)
    k /= k.sum()
    pad = np.pad(img, r, mode="reflect")
    rows = sum(k[i] * pad[:, i:i + img.shape[1]] for i in range(2 * r + 1))
    return sum(k[i] * rows[i:i + img.shape[0], :] for i in range(2 * r + 1))


def _grad(img: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    pad = np.pad(img, 1, mode="edge")
    gx = (pad[1:-1, 2:] - pad[1:-1, :-2]) / 2
    gy = (pad[2:, 1:-1] - pad[:-2, 1:-1]) / 2
    return gx, gy


def edge_strength(grey: np.ndarray, sigma: float = 1.0) -> np.ndarray:
    """Canny's edge strength before non-maximum suppression: the gradient magnitude of the Gaussian-smoothed image."""
    gx, gy = _grad(_gauss(grey, sigma))
    return np.hypot(gx, gy)


def keypoint_response(grey: np.ndarray, sigmas: tuple[float, ...] = (1.0, 2.0)) -> np.ndarray:
    """The SURF detector's response: det of the scale-normalised Gaussian Hessian, positive part, max over scales."""
    out = np.zeros_like(grey)
    for s in sigmas:
        smooth = _gauss(grey, s)
        gx, gy = _grad(smooth)
        gxx, gxy = _grad(gx)
        _, gyy = _grad(gy)
        out = np.maximum(out, np.clip((gxx * gyy - (0.9 * gxy) ** 2) * s ** 4, 0, None))
    return out


# ---------------------------------------------------------------------------------------------------------------------
# Writing (generator)
# ---------------------------------------------------------------------------------------------------------------------
def _file(root: Path, domain: str, building: str, point: int, view: int) -> Path:
    return root / domain / "taskonomy" / building / f"point_{point}_view_{view}_domain_{DOMAINS[domain]}.png"


def encode_view(image: np.ndarray, label: np.ndarray, depth: np.ndarray, normal: np.ndarray) -> dict[str, np.ndarray]:
    """One rendered view (rooms' arrays) as the release's six PNG payloads."""
    seg = np.ones(label.shape, dtype=np.uint8)  # background (class 0, raw 1)
    for room_cls, cls in _FROM_ROOMS.items():
        seg[label == room_cls] = cls + 1
    seg[label < 0] = SEG_UNLABELLED
    d = depth[..., 0]
    zbuf = np.where(d > 0, np.clip(np.round(d * DEPTH_UNITS), 0, 65534), 65535).astype(np.uint16)
    valid_n = np.abs(normal).sum(-1, keepdims=True) > 0
    nrm = np.where(valid_n, np.clip(np.round((normal + 1) / 2 * 255), 0, 255), 0).astype(np.uint8)
    grey = image @ np.array([0.299, 0.587, 0.114], dtype=np.float32)
    as16 = lambda a: np.clip(np.round(a), 0, 65535).astype(np.uint16)  # noqa: E731
    return {"rgb": np.clip(np.round(image * 255), 0, 255).astype(np.uint8), "segment_semantic": seg,
            "normal": nrm, "depth_zbuffer": zbuf,
            "keypoints2d": as16(keypoint_response(grey) * _KEYPOINT_GAIN),
            "edge_texture": as16(edge_strength(grey) * _EDGE_GAIN)}


def _render_one(args: tuple[RoomsSpec, int, str, int, str]) -> None:
    spec, b_index, building, point, out = args
    rng = np.random.default_rng([spec.seed, 7, b_index, point])  # one stream per view: bytes independent of workers
    payloads = encode_view(*render_scene(rng, spec.height, spec.width, spec.scene))
    for domain, arr in payloads.items():
        Image.fromarray(arr).save(_file(Path(out), domain, building, point, 0))


def generate(spec: RoomsSpec, root: Path, workers: int | None = None, progress: bool = True) -> Path:
    """Write generated buildings in the release's layout to `root`, atomically (a temporary folder renamed)."""
    counts = views_per_building(spec)
    everyone = [b for buildings in SPLITS.values() for b in buildings]

    def jobs(tmp: Path) -> list[tuple[RoomsSpec, int, str, int, str]]:
        out = []
        for split, buildings in SPLITS.items():
            for building in buildings:
                for domain in DOMAINS:
                    (tmp / domain / "taskonomy" / building).mkdir(parents=True, exist_ok=True)
                # the building's own random streams, whatever the split sizes
                out += [(spec, everyone.index(building), building, p, str(tmp)) for p in range(counts[split])]
        return out

    def meta(tmp: Path) -> dict:
        np.save(tmp / PRIOR_FILE, prior_factor(_train_histogram(tmp, generated_data_fix(root))))
        return {"generator": "mtlprune.data.taskonomy", "spec": asdict(spec), "views_per_building": counts,
                "classes": list(SEG_CLASSES)}

    return write_dataset(root, jobs, _render_one, meta, "view", workers, progress)


# ---------------------------------------------------------------------------------------------------------------------
# Reading
# ---------------------------------------------------------------------------------------------------------------------
def real_data_fix(root: Path) -> str:
    return (f"Place the Tiny-Taskonomy release (the six domains above, tiny split) at {root} (or point "
            f"MTLPRUNE_TASKONOMY at it); see data/README.md. Or use generated buildings: a profile with generated "
            f"data (smoke, quick) with --dataset taskonomy, written on first use.\n{LAYOUT_HELP}")


def generated_data_fix(root: Path) -> str:
    return regenerate_fix(root, "python -m mtlprune generate --dataset taskonomy")


def _read_png(path: Path, dtype: type, channels: int, fix: str) -> np.ndarray:
    try:
        with Image.open(path) as im:
            arr = np.array(im)
    except FileNotFoundError:
        raise DataError(f"Tiny-Taskonomy file missing: {path} (every domain needs the same views as rgb).\n"
                        f"  Fix: {fix}") from None
    except Exception as exc:  # noqa: BLE001 - any unreadable file gets the same actionable message
        raise DataError(f"malformed Tiny-Taskonomy file {path}: {type(exc).__name__}: {exc}.\n  Fix: {fix}") from None
    if arr.dtype != dtype or (arr.ndim != (2 if channels == 1 else 3)) or (channels > 1 and arr.shape[2] != channels):
        raise DataError(f"malformed Tiny-Taskonomy file {path}: {arr.dtype} of shape {arr.shape}, expected "
                        f"{np.dtype(dtype).name} with {channels} channel(s).\n  Fix: {fix}")
    return arr


def decode_view(files: dict[str, Path], fix: str) -> dict[str, np.ndarray]:
    """One view's six PNGs as training targets (channels last): see the module docstring for each decoding."""
    rgb = _read_png(files["rgb"], np.uint8, 3, fix).astype(np.float32) / 255
    seg = decode_segmentation(_read_png(files["segment_semantic"], np.uint8, 1, fix), files["segment_semantic"], fix)
    nrm = _read_png(files["normal"], np.uint8, 3, fix).astype(np.float32) / 255 * 2 - 1
    norm = np.linalg.norm(nrm, axis=-1, keepdims=True)
    nrm = np.where(np.abs(norm - 1) <= 0.25, nrm / np.maximum(norm, 1e-6), 0.0)
    zbuf = _read_png(files["depth_zbuffer"], np.uint16, 1, fix).astype(np.float32)
    depth = np.where(zbuf < DEPTH_VALID_BELOW, zbuf / DEPTH_UNITS, 0.0)[..., None]
    out = {"image": rgb, "semseg": seg, "normal": nrm.astype(np.float32), "depth": depth.astype(np.float32)}
    for domain, key in (("keypoints2d", "keypoints"), ("edge_texture", "edges")):
        out[key] = decode_range(_read_png(files[domain], np.uint16, 1, fix), RANGE[domain])[..., None]
    sizes = {k: v.shape[:2] for k, v in out.items()}
    if len(set(sizes.values())) != 1:
        raise DataError(f"Tiny-Taskonomy view {files['rgb'].name}: the domains differ in size {sizes}.\n  Fix: {fix}")
    return out


def decode_segmentation(raw: np.ndarray, where: Any, fix: str) -> np.ndarray:
    """Raw labels as classes: raw 0 → -1 (unlabelled, ignored), raw 1..17 → 0..16; anything above is an error."""
    raw = raw.astype(np.int64)
    bad = raw > NUM_SEG_CLASSES
    if bad.any():
        raise DataError(f"malformed Tiny-Taskonomy file {where}: raw label values {sorted(set(raw[bad].tolist()))[:5]} "
                        f"above {NUM_SEG_CLASSES} (0 is unlabelled, 1..{NUM_SEG_CLASSES} the classes).\n  Fix: {fix}")
    return raw - 1


def decode_range(raw: np.ndarray, top: float) -> np.ndarray:
    """A 16-bit map as the papers' loaders read it: v / 2^16 clipped to [0, top], mapped linearly onto [-1, 1]."""
    v = np.clip(raw.astype(np.float32) / 2 ** 16, 0.0, top)
    return (v / top * 2.0 - 1.0).astype(np.float32)


def prior_factor(histogram: np.ndarray, mix: float = PRIOR_MIX) -> np.ndarray:
    """Class weights from a label histogram: w_c ∝ 1 / ((1 − λ)·p_c + λ/C), normalised so that Σ p_c·w_c = 1."""
    p = histogram / max(histogram.sum(), 1)
    w = 1.0 / ((1 - mix) * p + mix / len(p))
    return (w / (p * w).sum()).astype(np.float32)


def _views(root: Path, split: str, fix: str) -> list[dict[str, Path]]:
    views = []
    for building in SPLITS[split]:
        folder = root / "rgb" / "taskonomy" / building
        if not folder.is_dir():
            raise DataError(f"Tiny-Taskonomy data at {root} incomplete: building folder {folder} does not exist "
                            f"({split} split).\n  Fix: {fix}")
        stems = sorted(p.name[:-len("_domain_rgb.png")] for p in folder.glob("*_domain_rgb.png"))
        if not stems:
            raise DataError(f"Tiny-Taskonomy data at {root} incomplete: {folder} holds no *_domain_rgb.png.\n"
                            f"  Fix: {fix}")
        for stem in stems:
            views.append({d: root / d / "taskonomy" / building / f"{stem}_domain_{f}.png" for d, f in DOMAINS.items()})
    return views


def _train_histogram(root: Path, fix: str) -> np.ndarray:
    hist = np.zeros(NUM_SEG_CLASSES, dtype=np.float64)
    for view in _views(root, "train", fix):
        seg = decode_segmentation(_read_png(view["segment_semantic"], np.uint8, 1, fix), view["segment_semantic"], fix)
        hist += np.bincount(seg[seg >= 0].ravel(), minlength=NUM_SEG_CLASSES)
    return hist


@functools.lru_cache(maxsize=8)
def class_weights(root: Path, fix: str) -> np.ndarray:
    """The segmentation loss's 17 class weights: the root's `semseg_prior_factor.npy`, else computed from train (once
    per root: every split of a run needs them)."""
    path = Path(root) / PRIOR_FILE
    if not path.exists():
        return prior_factor(_train_histogram(Path(root), fix))
    try:
        w = np.load(path, allow_pickle=False)
    except Exception as exc:  # noqa: BLE001 - any unreadable file gets the same actionable message
        raise DataError(f"malformed Tiny-Taskonomy file {path}: {type(exc).__name__}: {exc}.\n  Fix: {fix}") from None
    if w.shape != (NUM_SEG_CLASSES,) or not np.all(np.isfinite(w)) or (w < 0).any():
        raise DataError(f"malformed Tiny-Taskonomy file {path}: expected {NUM_SEG_CLASSES} finite non-negative "
                        f"class weights, got shape {w.shape}.\n  Fix: {fix}")
    return w.astype(np.float32)


def load_split(root: Path, split: str, fix: str | None = None) -> dict[str, torch.Tensor]:
    """Every view of the split's buildings in memory: image (N,3,H,W), semseg (N,H,W) long (-1 ignored), normal
    (N,3,H,W), depth (N,1,H,W) metres (0 invalid), keypoints and edges (N,1,H,W) in [-1, 1], and the loss's class
    weights repeated per sample, semseg_prior (N,17)."""
    if split not in SPLITS:
        raise ValueError(f"unknown split {split!r}; valid: {sorted(SPLITS)}")
    root = Path(root)
    fix = fix or real_data_fix(root)
    views = _views(root, split, fix)
    decoded = [decode_view(v, fix) for v in views]
    sizes = {d["image"].shape[:2] for d in decoded}
    if len(sizes) != 1:
        raise DataError(f"Tiny-Taskonomy data at {root}: views of different sizes {sorted(sizes)} in the {split} "
                        f"split; resize the release to one size first.\n  Fix: {fix}")
    as_nchw = lambda k: torch.from_numpy(np.ascontiguousarray(  # noqa: E731
        np.moveaxis(np.stack([d[k] for d in decoded]), -1, 1), dtype=np.float32))
    return {"image": as_nchw("image"),
            "semseg": torch.from_numpy(np.ascontiguousarray(np.stack([d["semseg"] for d in decoded]))),
            "normal": as_nchw("normal"), "depth": as_nchw("depth"),
            "keypoints": as_nchw("keypoints"), "edges": as_nchw("edges"),
            "semseg_prior": torch.from_numpy(class_weights(root, fix)).expand(len(decoded), -1).contiguous()}
