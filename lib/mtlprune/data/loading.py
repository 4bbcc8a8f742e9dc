"""Data for the multi-task runs: generated datasets made on first use, real ones read from disk, splits cached in
memory per process."""

from __future__ import annotations

import functools
from pathlib import Path

import torch

from .. import paths
from ..locks import make_once
from .nyuv2 import RoomsSpec, generate, generated_data_fix, load_split, real_data_fix


def data_root(synthetic: RoomsSpec | None) -> Path:
    return paths.generated_root() / synthetic.dirname() if synthetic is not None else paths.nyuv2_real_root()


def ensure_data(synthetic: RoomsSpec | None, progress: bool = True) -> Path:
    """Generated datasets are made on first use (deterministic, seconds); real data must already be on disk."""
    root = data_root(synthetic)
    if synthetic is not None:
        make_once(root, lambda r: generate(synthetic, r, progress=progress))
    return root


@functools.lru_cache(maxsize=8)
def _cached_split(root: str, split: str, val_fraction: float, split_seed: int,
                  generated: bool) -> dict[str, torch.Tensor]:
    fix = generated_data_fix(Path(root)) if generated else real_data_fix(Path(root))
    return load_split(Path(root), split, val_fraction=val_fraction, split_seed=split_seed, fix=fix)


def load_data(cfg, split: str, progress: bool = True) -> dict[str, torch.Tensor]:
    root = ensure_data(cfg.data.synthetic, progress)
    return _cached_split(str(root), split, cfg.data.val_fraction, cfg.data.split_seed, cfg.data.synthetic is not None)


