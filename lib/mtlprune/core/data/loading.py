"""Data for the multi-task runs, through the dataset axis (`datasets`): generated datasets made on first use, real ones
read from disk, splits cached in memory per process."""

from __future__ import annotations

import functools
from pathlib import Path

import torch

from ..locks import make_once
from .datasets import dataset_spec
from .nyuv2 import RoomsSpec


def data_root(synthetic: RoomsSpec | None, dataset: str = "nyuv2") -> Path:
    spec = dataset_spec(dataset)
    return spec.generated_root(synthetic) if synthetic is not None else spec.real_root()


def ensure_data(synthetic: RoomsSpec | None, progress: bool = True, dataset: str = "nyuv2") -> Path:
    """Generated datasets are made on first use (deterministic, seconds); real data must already be on disk."""
    root = data_root(synthetic, dataset)
    if synthetic is not None:
        make_once(root, lambda r: dataset_spec(dataset).generate(synthetic, r, progress=progress))
    return root


@functools.lru_cache(maxsize=8)
def _cached_split(dataset: str, root: str, split: str, val_fraction: float, split_seed: int,
                  generated: bool) -> dict[str, torch.Tensor]:
    return dataset_spec(dataset).read_split(Path(root), split, val_fraction, split_seed, generated)


def load_data(cfg, split: str, progress: bool = True) -> dict[str, torch.Tensor]:
    root = ensure_data(cfg.data.synthetic, progress, cfg.data.dataset)
    return _cached_split(cfg.data.dataset, str(root), split, cfg.data.val_fraction, cfg.data.split_seed,
                         cfg.data.synthetic is not None)
