"""Runs: cache lookup, locking, training, evaluation and the atomic `summary.json` that marks a run complete.

Layout (`paths`)::

    data/runs/<kind>-<hash>/config.json          canonical + full config, written once
    data/runs/<kind>-<hash>/seed_<n>/checkpoint.pt   resume point (every epoch)
                                   /history.jsonl    training curves
                                   /model.pt         final weights (effective, i.e. as used in the forward pass)
                                   /summary.json     written last, atomically: the run is complete iff it exists

A completed run is never retrained; a half-written one resumes from its checkpoint; a lock (`flock`) makes a second
process wait instead of writing the same run.
"""

from __future__ import annotations

import datetime as dt
import functools
import json
import math
import os
import platform
import subprocess
import time
from pathlib import Path
from typing import Any

import torch

from . import __version__, paths
from .config import RunConfig, canonical, to_dict
from .data.nyuv2 import RoomsSpec, generate, generated_data_fix, load_split, real_data_fix
from .errors import CacheError
from .locks import file_lock, make_once
from .metrics import delta_p, delta_t
from .models import build_model, prunable_layers
from .pruning import TrainContext, build_strategy
from .pruning.base import snapshot_steps
from .pruning.masks import export_sparse, plain_state_dict
from .sparsity import component_sparsity, sparsity_report
from .train import Runtime, evaluate, fit, iterate_batches, pick_device, seed_everything
from .validate import validate
from .weighting import build_weighting



# ---------------------------------------------------------------------------------------------------------------------
# Data
# ---------------------------------------------------------------------------------------------------------------------
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


def load_data(cfg: RunConfig, split: str, progress: bool = True) -> dict[str, torch.Tensor]:
    root = ensure_data(cfg.data.synthetic, progress)
    return _cached_split(str(root), split, cfg.data.val_fraction, cfg.data.split_seed, cfg.data.synthetic is not None)


# ---------------------------------------------------------------------------------------------------------------------
# Files
# ---------------------------------------------------------------------------------------------------------------------
def json_safe(obj: Any) -> Any:
    """NaN/inf (e.g. a relative change against a zero reference) become null: strict JSON, readable everywhere."""
    if isinstance(obj, float) and not math.isfinite(obj):
        return None
    if isinstance(obj, dict):
        return {k: json_safe(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [json_safe(v) for v in obj]
    return obj


def write_json_atomic(path: Path, obj: Any) -> None:
    tmp = path.with_name(path.name + f".tmp-{os.getpid()}")
    with open(tmp, "w") as fh:
        json.dump(json_safe(obj), fh, indent=2, sort_keys=True, allow_nan=False)
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, path)


SUMMARY_KEYS = ("run_id", "kind", "method", "seed", "metrics", "val_metrics", "delta_t", "delta_p", "sparsity",
                "params", "sparsity_layers", "bytes", "sparsity_requested", "dense_run_id", "train_seconds", "device",
                "config")


def read_summary(path: Path, required: tuple[str, ...] = ("run_id", "metrics"),
                 expect: dict[str, Any] | None = None) -> dict[str, Any]:
    """A run's summary, checked for the `required` keys and the `expect`ed values (e.g. this folder's run id and
    seed); one actionable message for every way it can be broken."""
    try:
        with open(path) as fh:
            summary = json.load(fh)
        if not isinstance(summary, dict):
            raise ValueError("not a JSON object")
        missing = [k for k in required if k not in summary]
        if missing:
            raise ValueError(f"missing key(s) {missing}")
        for key, value in (expect or {}).items():
            if summary.get(key) != value:
                raise ValueError(f"{key} is {summary.get(key)!r}, but this folder holds {key} {value!r}")
        return summary
    except Exception as exc:  # noqa: BLE001 - one message for every way a summary can be broken
        raise CacheError(f"{path} is corrupt ({type(exc).__name__}: {exc}). Delete it to recompute the run from its "
                         f"last checkpoint: rm '{path}'") from None


def load_state(path: Path, what: str, fix: str) -> dict[str, Any]:
    """A cached state dict (a dense reference's or a source network's weights), with one actionable message when it
    is missing or unreadable instead of a raw torch traceback."""
    if not path.exists():
        raise CacheError(f"{what} {path} is missing although its run is marked complete. {fix}")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001 - any unreadable file gets the same actionable message
        first = (str(exc).strip().splitlines() or [""])[0][:200]  # torch's own message runs over many lines
        raise CacheError(f"{what} {path} is unreadable ({type(exc).__name__}: {first}). {fix}") from None
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise CacheError(f"{what} {path} is not a state dict of tensors. {fix}")
    bad = [k for k, v in state.items() if v.is_floating_point() and not bool(torch.isfinite(v).all())]
    if bad:
        raise CacheError(f"{what} {path} holds NaN/inf weights ({bad[:3]}). {fix}")
    return state


def rerun_fix(directory: Path) -> str:
    return f"Delete its folder so it is retrained on the next run: rm -r '{directory}'"


def write_failure(out: Path, run_id: str, seed: int, exc: BaseException) -> None:
    """The record of a failed run (`failure.json`): what went wrong and when. A failed run has no summary, so it is
    never cached as complete; its last checkpoint is moved aside (kept for inspection) so a rerun starts afresh."""
    ckpt = out / "checkpoint.pt"
    if ckpt.exists():
        os.replace(ckpt, out / "checkpoint.failed.pt")
    write_json_atomic(out / "failure.json", {
        "run_id": run_id, "seed": seed, "error": f"{type(exc).__name__}: {exc}",
        "finished": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")})


def check_finite(what: str, values: dict[str, Any], fix: str = "lower train.lr (or check the data)") -> None:
    """Raise when any number in a (nested) dict of results is NaN/inf: such a run must never be cached."""
    bad: list[str] = []

    def walk(prefix: str, obj: Any) -> None:
        if isinstance(obj, dict):
            for k, v in obj.items():
                walk(f"{prefix}/{k}" if prefix else str(k), v)
        elif isinstance(obj, float) and not math.isfinite(obj):
            bad.append(prefix)

    walk("", values)
    if bad:
        raise FloatingPointError(f"non-finite {what}: {', '.join(bad[:6])}; the run is not cached. Fix: {fix}")


def run_lock(directory: Path):
    return file_lock(directory / ".lock", str(directory))


def _git_commit() -> str | None:
    try:
        out = subprocess.run(["git", "-C", str(paths.REPO_ROOT), "rev-parse", "HEAD"], capture_output=True, text=True,
                             timeout=5)
        return out.stdout.strip() or None
    except (OSError, subprocess.SubprocessError):
        return None


def summary_path(cfg: RunConfig, seed: int) -> Path:
    return paths.seed_dir(cfg.run_id, seed) / "summary.json"


def is_complete(cfg: RunConfig, seed: int) -> bool:
    return summary_path(cfg, seed).exists()


# ---------------------------------------------------------------------------------------------------------------------
# The run
# ---------------------------------------------------------------------------------------------------------------------
def run(cfg: RunConfig, seed: int = 0, runtime: Runtime = Runtime(), profile: str | None = None) -> dict[str, Any]:
    """Train (or load from the cache) one run and return its summary."""
    validate(cfg)
    if not isinstance(seed, int) or isinstance(seed, bool) or seed < 0:
        raise ValueError(f"seed must be a non-negative integer, got {seed!r}")
    out = paths.seed_dir(cfg.run_id, seed)
    if (out / "summary.json").exists():
        return _cached(cfg, seed)
    dense_summary = run(cfg.dense, seed, runtime, profile) if cfg.dense is not None else None
    with run_lock(out):
        if (out / "summary.json").exists():  # another process finished it while we waited
            return _cached(cfg, seed)
        try:
            summary = _train_and_summarize(cfg, seed, runtime, profile, out, dense_summary)
        except FloatingPointError as exc:
            write_failure(out, cfg.run_id, seed, exc)
            raise
        (out / "failure.json").unlink(missing_ok=True)  # an earlier failure of this run is superseded
        return summary


def _cached(cfg: RunConfig, seed: int) -> dict[str, Any]:
    return read_summary(summary_path(cfg, seed), SUMMARY_KEYS, {"run_id": cfg.run_id, "seed": seed})


def _train_and_summarize(cfg: RunConfig, seed: int, runtime: Runtime, profile: str | None, out: Path,
                         dense_summary: dict[str, Any] | None) -> dict[str, Any]:
    config_file = paths.run_dir(cfg.run_id) / "config.json"
    if not config_file.exists():
        write_json_atomic(config_file, {"run_id": cfg.run_id, "canonical": canonical(cfg), "full": to_dict(cfg)})
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
                 ckpt_path=out / "checkpoint.pt", runtime=runtime, desc=f"{cfg.run_id} seed {seed}",
                 snapshots=snapshots, monitor=lambda: component_sparsity(model))
    # the loop's last record is the validation of the final model: no second pass
    last_val = next(r for r in reversed(result.history) if r["split"] == "val")
    bad = [n for n, p in model.named_parameters() if not bool(torch.isfinite(p).all())]
    if bad:  # the last update can break the weights after the last finite loss was seen
        raise FloatingPointError(f"non-finite weights after training ({bad[:3]}); the run is not cached. "
                                 f"Fix: lower train.lr")
    metrics, test_losses = evaluate(model, test_data, cfg.tasks, cfg.train.eval_batch_size, device)
    val_metrics = {t: {m: last_val[f"{t}/{m}"] for m in ms} for t, ms in metrics.items()}
    check_finite("evaluation results", {"test": metrics, "val": val_metrics, "test_losses": test_losses})
    report = sparsity_report(model)
    reference = dense_summary["metrics"] if dense_summary is not None else metrics

    state = plain_state_dict(model)  # effective weights baked in: loads into a fresh, unpruned model
    torch.save(state, out / "model.pt")
    sparse_blob = export_sparse(state, [layer.name for layer in prunable_layers(model)])
    (out / "model_sparse.pt").write_bytes(sparse_blob)
    with open(out / "history.jsonl", "w") as fh:
        for rec in result.history:
            fh.write(json.dumps(rec) + "\n")
    summary = {
        "run_id": cfg.run_id,
        "kind": cfg.kind,
        "method": cfg.pruning.method,
        "weighting": cfg.weighting.name,
        "backbone": cfg.model.backbone,
        "sparsity_requested": cfg.pruning.sparsity,
        "seed": seed,
        "profile": profile,
        "dense_run_id": cfg.dense.run_id if cfg.dense is not None else None,
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
                "git_commit": _git_commit(), "threads": torch.get_num_threads()},
        "finished": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
        "config": canonical(cfg),
    }
    write_json_atomic(out / "summary.json", summary)  # last: marks the run complete
    return _cached(cfg, seed)  # the same object a cached run returns
