"""NYU-v2 in the preprocessed layout of MTAN / LibMTL: loading, validation, splitting, and writing generated scenes.

On disk (see `data/README.md`)::

    <root>/train/{image,label,depth,normal}/<i>.npy     i = 0 .. N-1
    <root>/val/{image,label,depth,normal}/<i>.npy       MTAN calls the official 654-image *test* split `val`

image (H, W, 3) float in [0, 1]; label (H, W) with classes 0..12 and -1 = ignore; depth (H, W, 1) metres, 0 = invalid;
normal (H, W, 3) unit vectors, 0 = invalid. The same reader serves the real release and the offline generator, which
writes exactly this layout. Our *validation* split is carved from `train` with a fixed seed; nothing is ever selected on
the test split.
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch

from ..errors import DataError
from .rooms import NYU13_CLASSES, SceneParams, render_scene
from .writing import regenerate_fix, write_dataset

NUM_CLASSES = len(NYU13_CLASSES)
MODALITIES = ("image", "label", "depth", "normal")
DISK_SPLIT = {"train": "train", "val": "train", "test": "val"}  # our split name -> folder on disk
LAYOUT_HELP = (
    "Expected layout (MTAN/LibMTL preprocessed NYU-v2, see data/README.md):\n"
    "  <root>/train/{image,label,depth,normal}/<i>.npy   and   <root>/val/{image,label,depth,normal}/<i>.npy\n"
    "  image (H,W,3) float in [0,1]; label (H,W) in 0..12, -1 ignored; depth (H,W,1) metres, 0 invalid; "
    "normal (H,W,3) unit, 0 invalid."
)


@dataclass(frozen=True)
class RoomsSpec:
    """Identity of a generated NYU-like dataset: same spec, same bytes."""

    n_train: int = 1200
    n_test: int = 300
    height: int = 48
    width: int = 64
    seed: int = 0
    scene: SceneParams = SceneParams()
    version: int = 1  # bump whenever the renderer changes what it writes

    def fingerprint(self) -> str:
        blob = json.dumps(asdict(self), sort_keys=True)
        return hashlib.sha256(blob.encode()).hexdigest()[:10]

    def dirname(self) -> str:
        return f"nyuv2-rooms-{self.height}x{self.width}-{self.fingerprint()}"


# ---------------------------------------------------------------------------------------------------------------------
# Writing (generator)
# ---------------------------------------------------------------------------------------------------------------------
def _render_one(args: tuple[RoomsSpec, int, int, str]) -> None:
    spec, split_code, index, out = args
    # One independent stream per sample: the bytes do not depend on worker count or order.
    rng = np.random.default_rng([spec.seed, split_code, index])
    image, label, depth, normal = render_scene(rng, spec.height, spec.width, spec.scene)
    for name, arr in zip(MODALITIES, (image, label, depth, normal)):
        np.save(os.path.join(out, name, f"{index}.npy"), arr)


def generate(spec: RoomsSpec, root: Path, workers: int | None = None, progress: bool = True) -> Path:
    """Write a generated dataset to `root` atomically (a temporary folder renamed at the end). Returns `root`."""
    def jobs(tmp: Path) -> list[tuple[RoomsSpec, int, int, str]]:
        out = []
        for split_code, (folder, n) in enumerate((("train", spec.n_train), ("val", spec.n_test))):
            for name in MODALITIES:
                (tmp / folder / name).mkdir(parents=True, exist_ok=True)
            out += [(spec, split_code, i, str(tmp / folder)) for i in range(n)]
        return out

    return write_dataset(root, jobs, _render_one, lambda tmp: {"generator": "mtlprune.data.rooms",
                                                               "spec": asdict(spec), "classes": list(NYU13_CLASSES)},
                         "scene", workers, progress)


# ---------------------------------------------------------------------------------------------------------------------
# Reading
# ---------------------------------------------------------------------------------------------------------------------
def real_data_fix(root: Path) -> str:
    return (f"Place the preprocessed NYU-v2 release at {root} (or point MTLPRUNE_NYUV2 at it); see data/README.md. "
            f"Or use the generated rooms instead: a profile with generated data (smoke, quick), written by "
            f"`python -m mtlprune generate --profile quick` or on first use.\n{LAYOUT_HELP}")


def generated_data_fix(root: Path) -> str:
    return regenerate_fix(root, "python -m mtlprune generate")


def _missing(root: Path, what: str, fix: str) -> DataError:
    return DataError(f"NYU-v2 data at {root} incomplete: {what}.\n  Fix: {fix}")


def _load_file(path: Path, shape_tail: tuple[int, ...], fix: str) -> np.ndarray:
    try:
        arr = np.load(path, allow_pickle=False)
    except Exception as exc:  # noqa: BLE001 - any unreadable file gets the same actionable message
        raise DataError(f"malformed dataset file {path}: {type(exc).__name__}: {exc}.\n  Fix: {fix}")
    if arr.ndim != 2 + len(shape_tail) or tuple(arr.shape[2:]) != shape_tail or not np.issubdtype(arr.dtype, np.number):
        raise DataError(f"malformed dataset file {path}: shape {arr.shape} dtype {arr.dtype}, expected (H, W"
                        f"{''.join(', ' + str(s) for s in shape_tail)}) numeric.\n  Fix: {fix}")
    if not np.all(np.isfinite(arr)):
        raise DataError(f"malformed dataset file {path}: contains NaN or inf.\n  Fix: {fix}")
    return arr


def load_split(root: Path, split: str, *, val_fraction: float = 0.1, split_seed: int = 0,
               fix: str | None = None) -> dict[str, torch.Tensor]:
    """Load one split into memory as tensors: image (N,3,H,W), label (N,H,W) long, depth (N,1,H,W), normal (N,3,H,W).

    `train` and `val` partition the on-disk train folder with a fixed permutation (`split_seed`); `test` is the
    on-disk `val` folder (MTAN's name for the official test split).
    """
    if split not in DISK_SPLIT:
        raise ValueError(f"unknown split {split!r}; valid: {sorted(DISK_SPLIT)}")
    if not 0.0 <= val_fraction < 1.0:
        raise ValueError(f"val_fraction must be in [0, 1), got {val_fraction}")
    root = Path(root)
    fix = fix or real_data_fix(root)
    folder = root / DISK_SPLIT[split]
    for name in MODALITIES:
        if not (folder / name).is_dir():
            raise _missing(root, f"folder {folder / name} does not exist", fix)
    n = len(list((folder / "image").glob("*.npy")))
    if n == 0:
        raise _missing(root, f"{folder / 'image'} holds no .npy files", fix)
    indices = np.arange(n)
    if split in ("train", "val"):
        perm = np.random.default_rng(split_seed).permutation(n)
        n_val = int(round(val_fraction * n))
        indices = np.sort(perm[:n_val] if split == "val" else perm[n_val:])
    out: dict[str, list[np.ndarray]] = {m: [] for m in MODALITIES}
    tails = {"image": (3,), "label": (), "depth": (1,), "normal": (3,)}
    hw = None
    for i in indices:
        for name in MODALITIES:
            path = folder / name / f"{i}.npy"
            if not path.exists():
                raise _missing(root, f"{path} is missing (files must be numbered 0..{n - 1} in every folder)",
                               fix)
            arr = _load_file(path, tails[name], fix)
            if hw is None:
                hw = arr.shape[:2]
            elif arr.shape[:2] != hw:
                raise DataError(f"malformed dataset file {path}: size {arr.shape[:2]} differs from {hw} of the "
                                f"other samples.\n  Fix: {fix}")
            out[name].append(arr)
    label = np.stack(out["label"])
    if label.size and (label.min() < -1 or label.max() >= NUM_CLASSES or not np.all(label == np.round(label))):
        raise DataError(f"malformed labels under {folder / 'label'}: values must be integers in -1..{NUM_CLASSES - 1}.\n  Fix: {fix}")
    # Channels first and C-contiguous: `astype` keeps moveaxis' strides, and channels-last-strided inputs crash
    # torch 2.13's single-threaded CPU conv backward (seen here as a heap corruption) besides being slower.
    as_nchw = lambda arr: torch.from_numpy(np.ascontiguousarray(np.moveaxis(arr, -1, 1), dtype=np.float32))  # noqa: E731
    return {
        "image": as_nchw(np.stack(out["image"])),
        "label": torch.from_numpy(np.ascontiguousarray(label, dtype=np.int64)),
        "depth": as_nchw(np.stack(out["depth"])),
        "normal": as_nchw(np.stack(out["normal"])),
    }
