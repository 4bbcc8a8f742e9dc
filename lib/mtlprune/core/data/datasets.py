"""The dataset axis of the multi-task runs: one registered spec per dataset, naming its tasks (their specs: `tasks`),
where its real release and its generated variant live, how the generated variant is written (exactly the release's
on-disk layout) and how a split is read (one reader for both, so generated and real data take the same code path).
`DataConfig.dataset` chooses one (default `nyuv2`); `data.loading` reads through it. Registered: NYU-v2 (the
MTAN/LibMTL preprocessed release, or the offline room generator) and Tiny-Taskonomy (the released per-building PNG
layout, or generated buildings written in it).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import torch

from .. import paths
from ..config import TASKS
from ..registry import Registry
from . import nyuv2, taskonomy

Split = dict[str, torch.Tensor]


@dataclass(frozen=True)
class DatasetSpec:
    name: str
    title: str
    tasks: tuple[str, ...]  # the tasks its ground truth covers (registered in `tasks`)
    real_root: Callable[[], Path]  # where the real release is read from (an environment variable may move it)
    generate: Callable[..., Any]  # (synthetic spec, root, progress=...) writes the release's layout under root
    read_split: Callable[[Path, str, float, int, bool], Split]  # (root, split, val_fraction, split_seed, generated)
    dirname: Callable[[Any], str] = lambda synthetic: synthetic.dirname()  # the generated variant's folder
    own_val_split: bool = False  # the release has validation buildings/images: `val_fraction` is not used
    # numerically revised code paths the dataset's reading takes (`identity.REVISIONS`): its runs' ids carry them
    code_paths: tuple[str, ...] = ()

    def generated_root(self, synthetic: Any) -> Path:
        return paths.generated_root() / self.dirname(synthetic)


DATASETS: Registry[DatasetSpec] = Registry("dataset")


def dataset_spec(name: str) -> DatasetSpec:
    return DATASETS.get(name)


def _read_nyuv2(root: Path, split: str, val_fraction: float, split_seed: int, generated: bool) -> Split:
    fix = nyuv2.generated_data_fix(root) if generated else nyuv2.real_data_fix(root)
    return nyuv2.load_split(root, split, val_fraction=val_fraction, split_seed=split_seed, fix=fix)


DATASETS.register("nyuv2")(DatasetSpec("nyuv2", "NYU-v2", TASKS, paths.nyuv2_real_root,
                                       nyuv2.generate, _read_nyuv2))


def _read_taskonomy(root: Path, split: str, val_fraction: float, split_seed: int, generated: bool) -> Split:
    # whole buildings per split, the release's own (val_fraction and split_seed do not apply)
    fix = taskonomy.generated_data_fix(root) if generated else taskonomy.real_data_fix(root)
    return taskonomy.load_split(root, split, fix=fix)


# Tiny-Taskonomy's five tasks, in the order of the AdaShare/DiSparse configs: segmentation (17 classes), normals,
# z-buffer depth, 2D keypoints, texture edges
DATASETS.register("taskonomy")(DatasetSpec("taskonomy", "Tiny-Taskonomy",
                                           ("semseg", "normal", "depth", "keypoints", "edges"),
                                           paths.taskonomy_real_root, taskonomy.generate, _read_taskonomy,
                                           dirname=taskonomy.dirname, own_val_split=True,
                                           code_paths=("taskonomy_decoding",)))
