"""How a run is computed, never what is computed (nothing here enters a run id): the device, progress bars, the
checkpoint cadence, seeding, and the CPU threads a run pins."""

from __future__ import annotations

import os
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Iterator

import torch


@dataclass(frozen=True)
class Runtime:
    """How to run, never what is run: none of this enters a run id."""

    device: str = "auto"  # auto | cpu | cuda
    progress: bool = True
    checkpoint_every: int = 1  # epochs between checkpoints (the final step is always checkpointed)


def pick_device(preference: str = "auto") -> torch.device:
    if preference not in ("auto", "cpu", "cuda"):
        raise ValueError(f"unknown device {preference!r}; valid: auto, cpu, cuda")
    if preference == "cuda" and not torch.cuda.is_available():
        raise ValueError("device 'cuda' requested but no CUDA device is available; use --device auto or cpu")
    if preference == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(preference)


def seed_everything(seed: int) -> None:
    """Seed every generator; on CUDA also ask for deterministic kernels (cuDNN without autotuning, cuBLAS with a
    fixed workspace), so the same seed gives the same numbers there too (a warning names any op without one)."""
    torch.manual_seed(seed)
    if torch.cuda.is_available():
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
        torch.backends.cudnn.benchmark = False
        torch.backends.cudnn.deterministic = True
        torch.use_deterministic_algorithms(True, warn_only=True)
        torch.cuda.manual_seed_all(seed)


@contextmanager
def pinned_threads(threads: int) -> Iterator[None]:
    """Run the block with `threads` CPU threads (0: leave the process's), then restore them. A run whose config pins
    its threads gives the same numbers whatever executor or machine computes it (the thread count changes how
    convolutions split their sums, so float rounding)."""
    before = torch.get_num_threads()
    if threads:
        torch.set_num_threads(threads)
    try:
        yield
    finally:
        torch.set_num_threads(before)
