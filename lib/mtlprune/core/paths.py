"""The only module that builds file-system paths: repository root, data, generated datasets, runs, the book.

Environment overrides: MTLPRUNE_DATA (data root), MTLPRUNE_RUNS (runs store), MTLPRUNE_NYUV2 (real NYU-v2 release),
MTLPRUNE_TASKONOMY (the Tiny-Taskonomy release),
MTLPRUNE_DECATHLON (the Visual Decathlon release), MTLPRUNE_NATIVE (where compiled kernels are cached).
"""

from __future__ import annotations

import os
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[3]  # lib/mtlprune/core/paths.py -> repository root (editable install)


# The artefacts of a run folder (`store`): data/runs/<kind>-<hash>/{CONFIG, seed_<n>/{SUMMARY, HISTORY, MODEL, ...}}
SUMMARY = "summary.json"  # written last, atomically: the run is complete iff it exists
HISTORY = "history.jsonl"  # training curves, one JSON record per line
FAILURE = "failure.json"  # why the last attempt failed
MODEL = "model.pt"  # final weights
CONFIG = "config.json"  # canonical, resolved and full config of the run id


def _folder(variable: str, default: Path) -> Path:
    """The folder an environment variable names (else `default`); one clear error when a file stands there."""
    path = Path(os.environ.get(variable) or default)
    if path.exists() and not path.is_dir():
        raise ValueError(f"{variable}={path} is a file, not a folder: point {variable} at a folder (or unset it)")
    return path


def data_root() -> Path:
    return _folder("MTLPRUNE_DATA", REPO_ROOT / "data")


def generated_root() -> Path:
    return data_root() / "generated"


def nyuv2_real_root() -> Path:
    return _folder("MTLPRUNE_NYUV2", data_root() / "nyuv2")


def taskonomy_real_root() -> Path:
    return _folder("MTLPRUNE_TASKONOMY", data_root() / "taskonomy")


def decathlon_root() -> Path:
    return _folder("MTLPRUNE_DECATHLON", data_root() / "decathlon")


def native_dir() -> Path:
    """Compiled kernels (`pruning.native`), one file per source, compiler and CPU: rebuilt on demand, never committed."""
    return _folder("MTLPRUNE_NATIVE", data_root() / "native")


def runs_root() -> Path:
    return _folder("MTLPRUNE_RUNS", data_root() / "runs")


def run_dir(run_id: str) -> Path:
    return runs_root() / run_id


def seed_dir(run_id: str, seed: int) -> Path:
    return run_dir(run_id) / f"seed_{seed}"


def notebooks_dir() -> Path:
    return REPO_ROOT / "notebooks"


def book_dir() -> Path:
    return REPO_ROOT / "book"
