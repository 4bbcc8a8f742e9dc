"""The run store: one protocol for every kind of run (multi-task, multi-domain, source pretraining).

Layout (`paths`)::

    data/runs/<kind>-<hash>/config.json              canonical, resolved and full config, written once
    data/runs/<kind>-<hash>/seed_<n>/checkpoint*.pt  resume points
                                   /history.jsonl    training curves, one JSON record per line
                                   /model.pt         final weights
                                   /failure.json     why the last attempt failed (no summary: not complete)
                                   /summary.json     written last, atomically: the run is complete iff it exists

`execute` is the protocol: a complete run is read back (checked for its required keys, run id and seed), never
retrained; otherwise the run trains under a lock (`flock`: a second process waits, then reads the result), its
summary is written last and atomically, and a divergence leaves a failure record instead of a summary.
"""

from __future__ import annotations

import datetime as dt
import json
import math
import os
import subprocess
from pathlib import Path
from typing import Any, Callable

import torch

from ..core import paths
from ..core.config import canonical, to_dict
from ..core.errors import CacheError
from ..core.identity import resolved
from ..core.locks import file_lock
from ..core.paths import CONFIG, FAILURE, HISTORY, SUMMARY


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
    try:
        with open(tmp, "w") as fh:
            json.dump(json_safe(obj), fh, indent=2, sort_keys=True, allow_nan=False)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)  # gone after the rename; a failed write leaves no partial file


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
    for ckpt in out.glob("checkpoint*.pt"):
        if not ckpt.name.endswith(".failed.pt"):
            os.replace(ckpt, ckpt.with_name(ckpt.stem + ".failed.pt"))
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


def write_config(run_id: str, cfg: Any) -> None:
    """`config.json` of a run: what people read (canonical), what the id hashes (resolved) and the full config."""
    path = paths.run_dir(run_id) / CONFIG
    if not path.exists():
        write_json_atomic(path, {"run_id": run_id, "canonical": canonical(cfg), "resolved": resolved(cfg),
                                 "full": to_dict(cfg)})


def write_history(out: Path, records: list[dict[str, Any]]) -> None:
    tmp = out / f"{HISTORY}.tmp-{os.getpid()}"
    try:
        with open(tmp, "w") as fh:
            for rec in records:
                fh.write(json.dumps(json_safe(rec), allow_nan=False) + "\n")
        os.replace(tmp, out / HISTORY)
    finally:
        tmp.unlink(missing_ok=True)


def read_history(out: Path) -> list[dict[str, Any]]:
    path = out / HISTORY
    try:
        with open(path) as fh:
            return [json.loads(line) for line in fh if line.strip()]
    except (OSError, ValueError) as exc:
        raise CacheError(f"{path} is unreadable ({type(exc).__name__}: {exc}). {rerun_fix(out)}") from None


def git_commit() -> str | None:
    try:
        proc = subprocess.run(["git", "-C", str(paths.REPO_ROOT), "rev-parse", "HEAD"], capture_output=True,
                              text=True, timeout=5)
        return proc.stdout.strip() or None
    except (OSError, subprocess.SubprocessError):
        return None


def is_complete(run_id: str, seed: int) -> bool:
    return (paths.seed_dir(run_id, seed) / SUMMARY).exists()


def cached(run_id: str, seed: int, required: tuple[str, ...]) -> dict[str, Any]:
    return read_summary(paths.seed_dir(run_id, seed) / SUMMARY, required, {"run_id": run_id, "seed": seed})


def check_seed(seed: Any) -> int:
    """A seed of the study: an integer in [0, 2^31) (the generators take it; the study's seeds are small)."""
    if not isinstance(seed, int) or isinstance(seed, bool) or not 0 <= seed < 2 ** 31:
        raise ValueError(f"seed must be an integer in [0, 2^31) (--seed / seeds), got {seed!r}")
    return seed


def execute(run_id: str, seed: int, required: tuple[str, ...],
            train: Callable[[Path], dict[str, Any]]) -> dict[str, Any]:
    """The protocol every run follows: cached, or `train(folder)` -> summary under the lock, written last."""
    check_seed(seed)
    out = paths.seed_dir(run_id, seed)
    if (out / SUMMARY).exists():
        return cached(run_id, seed, required)
    with run_lock(out):
        if (out / SUMMARY).exists():  # another process finished it while we waited
            return cached(run_id, seed, required)
        try:
            summary = train(out)
        except FloatingPointError as exc:
            write_failure(out, run_id, seed, exc)
            raise
        write_json_atomic(out / SUMMARY, summary)  # last: marks the run complete
        (out / FAILURE).unlink(missing_ok=True)  # an earlier failure of this run is superseded
    return cached(run_id, seed, required)  # the same object a cached run returns
