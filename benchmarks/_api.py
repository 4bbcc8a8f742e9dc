"""The library names the benchmarks use, from whichever `mtlprune` is on PYTHONPATH: this tree's layered one
(core / runs / study / render) or an older revision's flat one (`step_speed.py --against REV`, `step_profile.py` with
PYTHONPATH=<its lib>). A name an older revision lacks gets the behaviour that revision had (float32, contiguous
tensors, no heap tuning)."""

from __future__ import annotations

import contextlib
import importlib
from typing import Any

import torch

# name -> the modules that define it, newest layout first
_WHERE = {
    "build_model": ("mtlprune.core.models", "mtlprune.models"),
    "make_config": ("mtlprune.study.profiles", "mtlprune.profiles"),
    "TrainContext": ("mtlprune.core.pruning", "mtlprune.pruning"),
    "build_strategy": ("mtlprune.core.pruning", "mtlprune.pruning"),
    "plain_state_dict": ("mtlprune.core.pruning.masks", "mtlprune.pruning.masks"),
    "Runtime": ("mtlprune.core.runtime", "mtlprune.train"),
    "pick_device": ("mtlprune.core.runtime", "mtlprune.train"),
    "fit": ("mtlprune.core.train", "mtlprune.train"),
    "augment": ("mtlprune.core.train", "mtlprune.train"),
    "build_optimizer": ("mtlprune.core.train", "mtlprune.train"),
    "iterate_batches": ("mtlprune.core.train", "mtlprune.train"),
    "memory_format": ("mtlprune.core.train", "mtlprune.train"),
    "step_autocast": ("mtlprune.core.train", "mtlprune.train"),
    "task_losses": ("mtlprune.core.tasks", "mtlprune.losses"),
    "build_weighting": ("mtlprune.core.weighting", "mtlprune.weighting"),
    "keep_freed_memory": ("mtlprune.core.heap", "mtlprune.heap"),
    "load_data": ("mtlprune.core.data.loading", "mtlprune.data.loading", "mtlprune.runner"),
    "ensure_ray": ("mtlprune.runs.executors", "mtlprune.executors"),
}
_FALLBACK: dict[str, Any] = {
    "memory_format": lambda cfg: torch.contiguous_format,  # before the layout field: contiguous tensors only
    "step_autocast": lambda cfg, device: contextlib.nullcontext(),  # before the precision field: float32 only
    "keep_freed_memory": lambda: None,  # before the heap tuning
}


def __getattr__(name: str) -> Any:
    for module in _WHERE.get(name, ()):
        try:
            return getattr(importlib.import_module(module), name)
        except (ImportError, AttributeError):
            continue
    if name in _FALLBACK:
        return _FALLBACK[name]
    raise AttributeError(f"no mtlprune module on this path defines {name!r}")
