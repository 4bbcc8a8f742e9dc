"""Results bundles: the completed runs of a profile in one archive with provenance, to move results between machines
(a grid computed on a GPU box or a cluster, rendered into the book on a laptop; a published book with the bundle it
was built from).

A bundle is a `.tar.gz` holding `bundle.json` (provenance: git commit, host, devices, library versions, date; and
every run with the SHA-256 of each file) and, per run, `runs/<run id>/config.json` and
`runs/<run id>/seed_<n>/{summary.json, history.jsonl}` plus the model files the notebooks read (the dense
references' `model.pt`). Import merges a bundle into a run store: every file is checked against its hash, a run the
store already holds must be identical (else the whole import is refused, nothing written), a run without its summary
is refused, and each run's summary is written last, so an interrupted import leaves no run marked complete.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import io
import json
import os
import platform
import shutil
import socket
import tarfile
import tempfile
from pathlib import Path
from typing import Any

import numpy
import pandas
import torch

from .. import __version__
from ..core import paths
from . import store

FORMAT = 1
RUN_FILES = (paths.SUMMARY, paths.HISTORY)  # what every run ships; the notebooks read these
MODEL_KINDS = ("dense",)  # kinds whose model.pt the notebooks load (sample predictions of the dense reference)


def _sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def profile_runs(profile: str) -> list[tuple[str, int]]:
    """(run id, seed) of every completed run in the store that was run for `profile`."""
    root = paths.runs_root()
    out = []
    for path in sorted(root.glob(f"*/seed_*/{paths.SUMMARY}")) if root.exists() else []:
        summary = store.read_summary(path, ("run_id", "seed"))
        if summary.get("profile") == profile:
            out.append((summary["run_id"], summary["seed"]))
    return out


def export_bundle(profile: str, out: Path | None = None) -> Path:
    """Write the completed runs of `profile` into one archive; returns its path."""
    runs = profile_runs(profile)
    if not runs:
        raise ValueError(f"no completed runs of profile {profile!r} in {paths.runs_root()}: run the study first "
                         f"(python -m mtlprune study --profile {profile})")
    out = Path(out or paths.data_root() / "bundles" / f"{profile}.tar.gz")
    out.parent.mkdir(parents=True, exist_ok=True)
    files: dict[str, bytes] = {}
    entries, devices = [], set()
    for run_id, seed in runs:
        run_dir, seed_dir = paths.run_dir(run_id), paths.seed_dir(run_id, seed)
        names = [*RUN_FILES, *([paths.MODEL] if run_id.split("-")[0] in MODEL_KINDS else [])]
        entry = {"run_id": run_id, "seed": seed, "files": {}}
        for name in names:
            if (seed_dir / name).exists():
                rel = f"runs/{run_id}/seed_{seed}/{name}"
                files[rel] = (seed_dir / name).read_bytes()
                entry["files"][rel] = _sha(files[rel])
        if (run_dir / paths.CONFIG).exists():
            rel = f"runs/{run_id}/{paths.CONFIG}"
            files[rel] = (run_dir / paths.CONFIG).read_bytes()
            entry["files"][rel] = _sha(files[rel])
        devices.add(json.loads(files[f"runs/{run_id}/seed_{seed}/{paths.SUMMARY}"]).get("device"))
        entries.append(entry)
    manifest = {"format": FORMAT, "profile": profile, "runs": entries, "provenance": _provenance(devices)}
    tmp = out.with_name(out.name + f".tmp-{os.getpid()}")
    with tarfile.open(tmp, "w:gz") as tar:
        for name, data in [("bundle.json", json.dumps(manifest, indent=1, sort_keys=True).encode()),
                           *sorted(files.items())]:
            info = tarfile.TarInfo(name)
            info.size, info.mtime = len(data), 0
            tar.addfile(info, io.BytesIO(data))
    os.replace(tmp, out)
    return out


def _provenance(devices: set) -> dict[str, Any]:
    return {"git_commit": store.git_commit(), "host": socket.gethostname(), "platform": platform.platform(),
            "python": platform.python_version(), "devices": sorted(d for d in devices if d),
            "versions": {"mtlprune": __version__, "torch": torch.__version__, "numpy": numpy.__version__,
                         "pandas": pandas.__version__},
            "created": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")}


def read_bundle(path: Path) -> tuple[dict[str, Any], dict[str, bytes]]:
    """The manifest and the files of a bundle, every file checked against its hash."""
    path = Path(path)
    try:
        with tarfile.open(path, "r:gz") as tar:
            data = {m.name: tar.extractfile(m).read() for m in tar.getmembers() if m.isfile()}
        manifest = json.loads(data.pop("bundle.json"))
    except (OSError, tarfile.TarError, KeyError, ValueError) as exc:
        raise ValueError(f"{path} is not a results bundle ({type(exc).__name__}: {exc}); make one with "
                         f"`python -m mtlprune bundle export --profile PROFILE`") from None
    if manifest.get("format") != FORMAT:
        raise ValueError(f"{path}: bundle format {manifest.get('format')!r}, this library reads {FORMAT}")
    for entry in manifest["runs"]:
        for rel, sha in entry["files"].items():
            if rel not in data or _sha(data[rel]) != sha:
                raise ValueError(f"{path}: {rel} is missing or does not match its hash: the bundle is damaged")
        if f"runs/{entry['run_id']}/seed_{entry['seed']}/{paths.SUMMARY}" not in entry["files"]:
            raise ValueError(f"{path}: run {entry['run_id']} seed {entry['seed']} has no summary (incomplete run): "
                             f"refused")
    return manifest, data


def import_bundle(path: Path) -> dict[str, int]:
    """Merge a bundle into the run store; returns counts of runs added and already present."""
    manifest, data = read_bundle(path)
    conflicts, todo, present = [], [], 0
    for entry in manifest["runs"]:
        run_id, seed = entry["run_id"], entry["seed"]
        for rel in entry["files"]:
            local = paths.runs_root() / Path(rel).relative_to("runs")
            if local.exists() and local.name in (paths.SUMMARY, paths.CONFIG) and local.read_bytes() != data[rel]:
                conflicts.append(f"{run_id} seed {seed}: {local.name} differs from {local}")
        if store.is_complete(run_id, seed):
            present += 1
        else:
            todo.append(entry)
    if conflicts:
        raise ValueError(f"{path} conflicts with the run store {paths.runs_root()} (nothing imported):\n  "
                         + "\n  ".join(conflicts[:10]))
    for entry in todo:
        run_id, seed = entry["run_id"], entry["seed"]
        seed_dir = paths.seed_dir(run_id, seed)
        with store.run_lock(seed_dir):
            staging = Path(tempfile.mkdtemp(dir=seed_dir, prefix=".import-"))
            for rel in entry["files"]:
                target = paths.runs_root() / Path(rel).relative_to("runs")
                if target.parent == seed_dir:
                    (staging / target.name).write_bytes(data[rel])
                elif not target.exists():
                    target.parent.mkdir(parents=True, exist_ok=True)
                    target.write_bytes(data[rel])
            for f in sorted(staging.iterdir(), key=lambda f: f.name == paths.SUMMARY):  # the summary last
                os.replace(f, seed_dir / f.name)
            shutil.rmtree(staging, ignore_errors=True)
    return {"added": len(todo), "present": present}
