"""Multi-task runs: train one `RunConfig` at one seed (resuming from its checkpoint), evaluate it, and summarise it
into the run store (`store`: cache, lock, failure record, the atomic `summary.json` that marks a run complete).

A pruned run first runs (or loads) the dense run it starts from; a completed run is never retrained.
"""

from __future__ import annotations

import datetime as dt
import platform
import time
from pathlib import Path
from typing import Any

import torch

from .. import __version__
from ..core import paths
from ..core.config import RunConfig, canonical
from ..core.data.loading import ensure_data, load_data
from ..core.identity import run_id
from ..core.metrics import delta_p, delta_t
from ..core.models import build_model, prunable_layers
from ..core.pruning import TrainContext, build_strategy
from ..core.pruning.base import snapshot_steps
from ..core.pruning.masks import export_sparse, plain_state_dict
from ..core.runtime import Runtime, pick_device, pinned_threads, seed_everything
from ..core.sparsity import component_sparsity, sparsity_report
from ..core.train import evaluate, fit, iterate_batches
from ..core.validate import validate
from ..core.weighting import build_weighting
from . import store
from .store import check_finite, load_state, rerun_fix

SUMMARY_KEYS = ("run_id", "kind", "method", "seed", "metrics", "val_metrics", "delta_t", "delta_p", "sparsity",
                "params", "sparsity_layers", "bytes", "sparsity_requested", "dense_run_id", "train_seconds", "device",
                "config")


def summary_path(cfg: RunConfig, seed: int) -> Path:
    return paths.seed_dir(run_id(cfg), seed) / paths.SUMMARY


def run(cfg: RunConfig, seed: int = 0, runtime: Runtime = Runtime(), profile: str | None = None) -> dict[str, Any]:
    """Train (or load from the cache) one run and return its summary."""
    validate(cfg)
    store.check_seed(seed)  # before the dense reference / the data and source it needs
    if store.is_complete(run_id(cfg), seed):
        return store.cached(run_id(cfg), seed, SUMMARY_KEYS)
    dense_summary = run(cfg.dense, seed, runtime, profile) if cfg.dense is not None else None
    def train(out: Path) -> dict[str, Any]:
        with pinned_threads(cfg.train.threads):  # the config's thread count, whatever process computes it
            return _train_and_summarize(cfg, seed, runtime, profile, out, dense_summary)

    return store.execute(run_id(cfg), seed, SUMMARY_KEYS, train)


def _train_and_summarize(cfg: RunConfig, seed: int, runtime: Runtime, profile: str | None, out: Path,
                         dense_summary: dict[str, Any] | None) -> dict[str, Any]:
    store.write_config(run_id(cfg), cfg)
    device = pick_device(runtime.device)
    train_data = load_data(cfg, "train", runtime.progress)
    val_data = load_data(cfg, "val", runtime.progress)
    test_data = load_data(cfg, "test", runtime.progress)

    seed_everything(seed)
    model = build_model(cfg.model, cfg.tasks).to(device)
    weighting = build_weighting(cfg.weighting.name, cfg.tasks, dict(cfg.weighting.params),
                                cfg.train.iterations).to(device)
    strategy = build_strategy(cfg.pruning)
    dense_state, dense_dir = None, None
    if dense_summary is not None:
        dense_dir = paths.seed_dir(dense_summary["run_id"], seed)
        if strategy.needs_dense:
            dense_state = {k: v.to(device) for k, v in load_state(
                dense_dir / "model.pt", "the dense reference's weights", rerun_fix(dense_dir)).items()}
    batch_gen = torch.Generator().manual_seed(seed + 1)  # batches a strategy draws (scores, growth); checkpointed
    ctx = TrainContext(model=model, cfg=cfg, device=device, dense_state=dense_state, dense_dir=dense_dir, seed=seed,
                       batch_rng=batch_gen,
                       train_batches=lambda: iterate_batches(train_data, cfg.train.batch_size, batch_gen, True))
    snapshots = tuple(snapshot_steps(cfg.train.iterations)) if strategy.keeps_snapshots else ()

    started = time.time()
    result = fit(model, weighting, strategy, ctx, train_data, val_data, cfg.train, seed=seed, flip=cfg.data.flip,
                 ckpt_path=out / "checkpoint.pt", runtime=runtime, desc=f"{run_id(cfg)} seed {seed}",
                 snapshots=snapshots, monitor=lambda: component_sparsity(model))
    # the loop's last record is the validation of the final model: no second pass
    last_val = next(r for r in reversed(result.history) if r["split"] == "val")
    bad = [n for n, p in model.named_parameters() if not bool(torch.isfinite(p).all())]
    if bad:  # the last update can break the weights after the last finite loss was seen
        raise FloatingPointError(f"non-finite weights after training ({bad[:3]}); the run is not cached. "
                                 f"Fix: lower train.lr")
    metrics, test_losses = evaluate(model, test_data, cfg.tasks, device, cfg.train)
    val_metrics = {t: {m: last_val[f"{t}/{m}"] for m in ms} for t, ms in metrics.items()}
    check_finite("evaluation results", {"test": metrics, "val": val_metrics, "test_losses": test_losses})
    report = sparsity_report(model)
    reference = dense_summary["metrics"] if dense_summary is not None else metrics

    state = plain_state_dict(model)  # effective weights baked in: loads into a fresh, unpruned model
    torch.save(state, out / "model.pt")
    sparse_blob = export_sparse(state, [layer.name for layer in prunable_layers(model)])
    (out / "model_sparse.pt").write_bytes(sparse_blob)
    store.write_history(out, result.history)
    summary = {
        "run_id": run_id(cfg),
        "kind": cfg.kind,
        "method": cfg.pruning.method,
        "weighting": cfg.weighting.name,
        "backbone": cfg.model.backbone,
        "sparsity_requested": cfg.pruning.sparsity,
        "seed": seed,
        "profile": profile,
        "dense_run_id": run_id(cfg.dense) if cfg.dense is not None else None,
        "metrics": metrics,
        "val_metrics": val_metrics,
        "test_losses": test_losses,
        "delta_t": delta_t(metrics, reference),
        "delta_p": delta_p(metrics, reference),
        "sparsity": {"overall": report["overall"], "components": report["components"]},
        "params": {"prunable": report["prunable_params"], "components": report["component_params"],
                   "total": sum(p.numel() for p in model.parameters())},
        "sparsity_layers": report["layers"],
        "bytes": {"dense_float32": 4 * sum(v.numel() for v in state.values() if v.is_floating_point()),
                  "model_file": (out / "model.pt").stat().st_size, "sparse_file": len(sparse_blob)},
        "iterations": cfg.train.iterations,
        "resumed_from_step": result.resumed_from,
        "train_seconds": result.seconds,
        "wall_seconds_this_process": time.time() - started,
        "device": str(device) + (f" ({torch.cuda.get_device_name()})" if device.type == "cuda" else ""),
        "env": {"torch": torch.__version__, "python": platform.python_version(), "mtlprune": __version__,
                "git_commit": store.git_commit(), "threads": torch.get_num_threads()},
        "finished": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
        "config": canonical(cfg),
    }
    return summary  # the store writes it last, atomically


def log_row(cfg: RunConfig, summary: dict[str, Any]) -> dict[str, Any]:
    """The run log's columns of a finished multi-task run."""
    return {"method": cfg.kind, "requested": cfg.pruning.sparsity, "achieved": summary["sparsity"]["overall"],
            "Δ_T": summary["delta_t"]["mean"]}


def events(cfg: RunConfig) -> tuple[int, int]:
    """(validations, checkpoints) of one run of `cfg` (`runs.cost`): one each per epoch of the training split
    (`train.MultiTaskTrainee`: full batches only) and at the last step."""
    n = load_data(cfg, "train", progress=False)["image"].shape[0]
    per_epoch = max(1, n // cfg.train.batch_size if n >= cfg.train.batch_size else 1)
    periods = -(-cfg.train.iterations // per_epoch)
    return periods, periods


def updates(cfg: RunConfig) -> int | None:
    """The mask updates of one run of `cfg` (`PruningStrategy.updates`), which `runs.cost` prices apart from its
    steps; None for a strategy whose per-step work is uniform."""
    return build_strategy(cfg.pruning).updates(cfg.train.iterations)


def prepare(cfg: RunConfig) -> None:
    """What packed runs share, made once before they start: the generated dataset."""
    ensure_data(cfg.data.synthetic, progress=False, dataset=cfg.data.dataset)
