"""Model choices made on the validation split only: the best baseline per sparsity, by validation Δ_T (the test
split never chooses)."""

from __future__ import annotations

from typing import Iterable

from .config import RunConfig
from .grids import check_sparsities
from .metrics import delta_t
from .runner import summary_path
from .store import read_summary


def validation_delta_t(cfg: RunConfig, seed: int) -> float:
    """Mean Δ_T of a pruned run on the validation split (against its dense reference's validation metrics)."""
    run_summary = read_summary(summary_path(cfg, seed))
    dense_summary = read_summary(summary_path(cfg.dense, seed))
    return delta_t(run_summary["val_metrics"], dense_summary["val_metrics"])["mean"]


def best_by_validation(pairs: list[tuple[RunConfig, int]], sparsities: Iterable[float],
                       seed: int | None = None) -> dict[float, RunConfig]:
    """Per requested sparsity, the run config with the best validation Δ_T at `seed` (default: the lowest seed in
    `pairs`). The test split never chooses: this is how 'the best baseline' is picked before its extra seeds run."""
    seed = min(s for _, s in pairs) if seed is None else seed
    out = {}
    for s in check_sparsities(list(sparsities)):
        cands = [cfg for cfg, sd in pairs if sd == seed and cfg.pruning.sparsity == s]
        if not cands:
            raise ValueError(f"no run at sparsity {s} and seed {seed} among the given pairs")
        out[s] = max(cands, key=lambda c: validation_delta_t(c, seed))
    return out
