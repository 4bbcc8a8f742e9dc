"""Results bundles: the completed runs of a profile in one archive with provenance, to move results between machines
(a grid computed on a GPU box or a cluster, rendered into the book on a laptop; a published book with the bundle it
was built from). A bundle is untrusted input: it may come from a stranger.

A bundle is a `.tar.gz` holding `bundle.json` (format, profile, provenance: library version, git commit, identity
schema, host, devices, library versions, date; and every run with the SHA-256 and size of each file) and, per run,
`runs/<run id>/config.json` and `runs/<run id>/seed_<n>/{summary.json, history.jsonl}`, plus the model files the
notebooks read (the dense references' `model.pt`). Nothing else: no checkpoint travels, only complete runs do.

Export checks every run it packs (its config hashes to its id, its summary and history parse, its model loads).
Import, before anything reaches the run store:
- reads the archive as a stream (no member is read whole into memory), refuses any member that is not a regular file
  the manifest lists at a path of the fixed layout (no `..`, no absolute path, no link), or that exceeds its listed
  size or `MAX_FILE`, and checks every file against its hash;
- checks the manifest's schema, that the bundle comes from this library version (`--accept-version` overrides it; the
  provenance is always shown), that every run id has the id format and is the hash of its own config, that every
  summary has its kind's keys, this run id and seed, and finite metrics, that every history line is a JSON object and
  every model file a state dict of finite tensors (loaded with `weights_only=True`);
- stages everything in a temporary folder inside the store, then moves each run in under its lock, checking again
  under the lock that the store holds no different result of it (a run the store completes meanwhile is kept and
  reported), the summary last, so an interrupted import leaves no run marked complete and no stale checkpoint.
"""

from __future__ import annotations

import datetime as dt
import gzip
import hashlib
import io
import json
import os
import platform
import re
import shutil
import socket
import tarfile
import tempfile
import zlib
from pathlib import Path, PurePosixPath
from typing import Any, Iterator

import numpy
import pandas
import torch

from .. import __version__
from ..core import paths
from ..core.config import MDLConfig, RunConfig, SourceConfig, from_dict
from ..core.identity import SCHEMA, run_id
from . import store
from .kinds import KINDS

FORMAT = 2  # 1: no sizes, no schema in the provenance, checkpoints allowed
RUN_FILES = (paths.SUMMARY, paths.HISTORY)  # what every run ships; the notebooks read these
MODEL_KINDS = ("dense",)  # kinds whose model.pt the notebooks load (sample predictions of the dense reference)
MAX_FILE = 1 << 30  # bytes: a full-profile dense model is ~0.3 GiB
MAX_MANIFEST = 16 << 20
RUN_ID = re.compile(r"^[a-z][a-z0-9_]*(-[a-z0-9_]+)?-[0-9a-f]{12}$")
SEED_DIR = re.compile(r"^seed_(\d{1,9})$")
SHA = re.compile(r"^[0-9a-f]{64}$")
ALLOWED = {paths.SUMMARY, paths.HISTORY, paths.MODEL}  # per seed folder; config.json per run folder
FINITE = {"multi-task": ("metrics", "val_metrics", "sparsity"), "multi-domain": ("accuracy", "val_accuracy",
                                                                                    "mean_accuracy"), "source": ()}


class BundleError(ValueError):
    """A bundle that cannot be exported or imported; the message names the file or run and why."""


def _sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _config_class(rid: str) -> type:
    return SourceConfig if rid.startswith("mdlsource-") else MDLConfig if rid.startswith("mdl-") else RunConfig


def _kind_name(rid: str) -> str:
    return {SourceConfig: "source", MDLConfig: "multi-domain", RunConfig: "multi-task"}[_config_class(rid)]


# ---------------------------------------------------------------------------------------------------------------------
# The checks shared by export and import
# ---------------------------------------------------------------------------------------------------------------------
def check_config(rid: str, data: bytes, where: str) -> None:
    """`config.json` of run `rid`: a JSON object whose full config hashes to `rid`."""
    try:
        doc = json.loads(data)
        if not isinstance(doc, dict) or not isinstance(doc.get("full"), dict):
            raise ValueError("not a config.json of this library (no `full` config)")
        cfg = from_dict(_config_class(rid), doc["full"])
        if run_id(cfg) != rid:
            raise ValueError(f"its config hashes to {run_id(cfg)}, not to the id it is filed under (another library "
                             f"version, or an edited file)")
    except Exception as exc:  # noqa: BLE001 - one message for every way it can be wrong
        raise BundleError(f"{where}: config.json of {rid} is not valid ({type(exc).__name__}: {exc})") from None


def check_summary(rid: str, seed: int, data: bytes, where: str) -> None:
    """A complete run's summary: a JSON object with its kind's keys, this run id and seed, finite metrics."""
    try:
        doc = json.loads(data)
        if not isinstance(doc, dict):
            raise ValueError("not a JSON object")
        kind = next(k for k in KINDS if k.name == _kind_name(rid))
        missing = [k for k in kind.summary_keys if k not in doc]
        if missing:
            raise ValueError(f"missing key(s) {missing}")
        if doc.get("run_id") != rid or doc.get("seed") != seed:
            raise ValueError(f"it is the summary of {doc.get('run_id')!r} seed {doc.get('seed')!r}")
        bad = _not_finite({k: doc[k] for k in FINITE[kind.name]})
        if bad:
            raise ValueError(f"non-finite or missing values at {', '.join(bad[:5])}")
    except Exception as exc:  # noqa: BLE001
        raise BundleError(f"{where}: the summary of {rid} seed {seed} is not valid ({type(exc).__name__}: "
                          f"{exc})") from None


def _not_finite(obj: Any, prefix: str = "") -> list[str]:
    """Paths of the values that are not finite numbers (null included) in a nested dict of results."""
    if isinstance(obj, dict):
        return [p for k, v in obj.items() for p in _not_finite(v, f"{prefix}/{k}" if prefix else str(k))]
    if isinstance(obj, list):
        return [p for i, v in enumerate(obj) for p in _not_finite(v, f"{prefix}/{i}")]
    if isinstance(obj, str):
        return []
    ok = isinstance(obj, (int, float)) and not isinstance(obj, bool) and numpy.isfinite(obj)
    return [] if ok else [prefix]


def check_history(rid: str, data: bytes, where: str) -> None:
    try:
        for i, line in enumerate(data.decode().splitlines(), 1):
            if line.strip() and not isinstance(json.loads(line), dict):
                raise ValueError(f"line {i} is not a JSON object")
    except Exception as exc:  # noqa: BLE001
        raise BundleError(f"{where}: the history of {rid} is not valid ({type(exc).__name__}: {exc})") from None


def check_model(rid: str, path: Path, where: str) -> None:
    try:
        store.load_state(path, "model", "")
    except Exception as exc:  # noqa: BLE001
        raise BundleError(f"{where}: the model of {rid} is not valid ({str(exc).split('. ')[0]})") from None


# ---------------------------------------------------------------------------------------------------------------------
# Export
# ---------------------------------------------------------------------------------------------------------------------
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
    """Write the completed runs of `profile` into one archive, every run checked first; returns its path."""
    runs = profile_runs(profile)
    if not runs:
        raise BundleError(f"no completed runs of profile {profile!r} in {paths.runs_root()}: run the study first "
                          f"(python -m mtlprune study --profile {profile})")
    out = Path(out or paths.data_root() / "bundles" / f"{profile}.tar.gz")
    if out.is_dir():
        raise BundleError(f"{out} is a folder: give the archive's file name, e.g. {out / f'{profile}.tar.gz'}")
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
    except (FileExistsError, NotADirectoryError):
        raise BundleError(f"cannot write {out}: {out.parent} is not a folder") from None
    files: dict[str, Path] = {}
    entries, devices = [], set()
    for rid, seed in runs:
        run_dir, seed_dir = paths.run_dir(rid), paths.seed_dir(rid, seed)
        fix = f"; delete the run to recompute it: rm -r '{seed_dir}'"
        config = run_dir / paths.CONFIG
        if not config.exists():
            raise BundleError(f"{rid} has no {paths.CONFIG}{fix}")
        try:
            check_config(rid, config.read_bytes(), "export")
            check_summary(rid, seed, (seed_dir / paths.SUMMARY).read_bytes(), "export")
            if (seed_dir / paths.HISTORY).exists():
                check_history(rid, (seed_dir / paths.HISTORY).read_bytes(), "export")
            if rid.split("-")[0] in MODEL_KINDS and (seed_dir / paths.MODEL).exists():
                check_model(rid, seed_dir / paths.MODEL, "export")
        except BundleError as exc:
            raise BundleError(f"{exc}{fix}") from None
        entry = {"run_id": rid, "seed": seed, "files": {}}
        names = [*RUN_FILES, *([paths.MODEL] if rid.split("-")[0] in MODEL_KINDS else [])]
        for rel, path in [*((f"runs/{rid}/seed_{seed}/{n}", seed_dir / n) for n in names),
                          (f"runs/{rid}/{paths.CONFIG}", config)]:
            if path.exists():
                files[rel] = path
                entry["files"][rel] = {"sha256": _sha(path.read_bytes()), "bytes": path.stat().st_size}
        devices.add(json.loads((seed_dir / paths.SUMMARY).read_text()).get("device"))
        entries.append(entry)
    manifest = {"format": FORMAT, "profile": profile, "runs": entries, "provenance": provenance(devices)}
    tmp = out.with_name(out.name + f".tmp-{os.getpid()}")
    try:
        with tarfile.open(tmp, "w:gz") as tar:
            _add(tar, "bundle.json", json.dumps(manifest, indent=1, sort_keys=True).encode())
            for rel in sorted(files):
                _add(tar, rel, files[rel].read_bytes())
        os.replace(tmp, out)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return out


def _add(tar: tarfile.TarFile, name: str, data: bytes) -> None:
    info = tarfile.TarInfo(name)
    info.size, info.mtime = len(data), 0
    tar.addfile(info, io.BytesIO(data))


def provenance(devices: set) -> dict[str, Any]:
    return {"git_commit": store.git_commit(), "host": socket.gethostname(), "platform": platform.platform(),
            "python": platform.python_version(), "devices": sorted(d for d in devices if d),
            "identity_schema": SCHEMA,
            "versions": {"mtlprune": __version__, "torch": torch.__version__, "numpy": numpy.__version__,
                         "pandas": pandas.__version__},
            "created": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")}


# ---------------------------------------------------------------------------------------------------------------------
# Import
# ---------------------------------------------------------------------------------------------------------------------
def _check_manifest(manifest: Any, where: str) -> list[dict[str, Any]]:
    """The manifest's schema; returns its run entries (each with a valid id, seed and file list)."""
    if not isinstance(manifest, dict):
        raise BundleError(f"{where}: bundle.json is not a JSON object")
    if manifest.get("format") != FORMAT:
        raise BundleError(f"{where}: bundle format {manifest.get('format')!r}; this library reads format {FORMAT} "
                          f"(export the runs again with this version: python -m mtlprune bundle export)")
    runs = manifest.get("runs")
    if not isinstance(runs, list) or not runs:
        raise BundleError(f"{where}: bundle.json's `runs` must be a non-empty list")
    if not isinstance(manifest.get("provenance"), dict):
        raise BundleError(f"{where}: bundle.json has no `provenance` object")
    seen = set()
    for i, entry in enumerate(runs):
        if not isinstance(entry, dict):
            raise BundleError(f"{where}: run entry #{i} is not an object")
        rid, seed, files = entry.get("run_id"), entry.get("seed"), entry.get("files")
        if not isinstance(rid, str) or not RUN_ID.match(rid):
            raise BundleError(f"{where}: run entry #{i}: run_id {rid!r} is not a run id (<kind>-<12 hex digits>)")
        if not isinstance(seed, int) or isinstance(seed, bool) or not 0 <= seed < 2 ** 31:
            raise BundleError(f"{where}: run {rid}: seed {seed!r} is not an integer in [0, 2^31)")
        if (rid, seed) in seen:
            raise BundleError(f"{where}: run {rid} seed {seed} is listed twice")
        seen.add((rid, seed))
        if not isinstance(files, dict):
            raise BundleError(f"{where}: run {rid} seed {seed}: `files` is not an object")
        for rel, info in files.items():
            _check_member_path(rel, rid, seed, where)
            if (not isinstance(info, dict) or not isinstance(info.get("sha256"), str) or not SHA.match(info["sha256"])
                    or not isinstance(info.get("bytes"), int) or not 0 <= info["bytes"] <= MAX_FILE):
                raise BundleError(f"{where}: {rel}: its entry needs a sha256 and a size of at most {MAX_FILE} bytes")
        if f"runs/{rid}/seed_{seed}/{paths.SUMMARY}" not in files:
            raise BundleError(f"{where}: run {rid} seed {seed} has no summary (an incomplete run): refused")
        if f"runs/{rid}/{paths.CONFIG}" not in files:
            raise BundleError(f"{where}: run {rid} has no {paths.CONFIG}: its id cannot be checked: refused")
    return runs


def _check_member_path(rel: Any, rid: str, seed: int, where: str) -> None:
    """A listed path: `runs/<rid>/config.json` or `runs/<rid>/seed_<seed>/<summary|history|model>`, nothing else."""
    ok = isinstance(rel, str)
    if ok:
        parts = PurePosixPath(rel).parts
        ok = ("\\" not in rel and rel == PurePosixPath(rel).as_posix() and len(parts) in (3, 4) and parts[0] == "runs"
              and parts[1] == rid and (parts[2] == paths.CONFIG if len(parts) == 3 else
                                       parts[2] == f"seed_{seed}" and parts[3] in ALLOWED))
    if not ok:
        raise BundleError(f"{where}: listed path {rel!r} is not a file of run {rid} seed {seed} (allowed: "
                          f"runs/<id>/config.json, runs/<id>/seed_<n>/{{{', '.join(sorted(ALLOWED))}}}): refused")


def _members(tar: tarfile.TarFile, where: str) -> Iterator[tarfile.TarInfo]:
    try:
        for member in tar:
            yield member
    except (tarfile.TarError, OSError, EOFError) as exc:
        raise BundleError(f"{where} is damaged or not a complete archive ({type(exc).__name__}: {exc})") from None


def _copy(src: Any, dst: Path, limit: int) -> str:
    """Stream `src` into `dst` (at most `limit` bytes); returns the SHA-256."""
    h, n = hashlib.sha256(), 0
    with open(dst, "wb") as out:
        while chunk := src.read(1 << 20):
            n += len(chunk)
            if n > limit:
                raise BundleError(f"{dst.name}: more bytes than listed")
            h.update(chunk)
            out.write(chunk)
    return h.hexdigest()


def read_bundle(path: Path, staging: Path) -> dict[str, Any]:
    """The manifest of a bundle, its files streamed into `staging/<relative path>`, every path, size and hash
    checked. Raises `BundleError` naming the first problem."""
    path = Path(path)
    where = str(path)
    if not path.is_file():
        raise BundleError(f"{where} is not a file; make a bundle with `python -m mtlprune bundle export --profile P`")
    try:
        tar = tarfile.open(path, "r:gz")
    except (tarfile.TarError, OSError, EOFError) as exc:
        raise BundleError(f"{where} is not a results bundle ({type(exc).__name__}: {exc})") from None
    try:
        with tar:
            return _stream(tar, staging, where)
    except (tarfile.TarError, EOFError, zlib.error, gzip.BadGzipFile) as exc:
        raise BundleError(f"{where} is damaged or not a complete archive ({type(exc).__name__}: {exc})") from None


def _stream(tar: tarfile.TarFile, staging: Path, where: str) -> dict[str, Any]:
    """Stream the members of an opened bundle into `staging`, checking each against the manifest."""
    manifest = None
    members = _members(tar, where)  # one pass over the archive
    for member in members:  # bundle.json first (export writes it first)
        if member.name != "bundle.json":
            raise BundleError(f"{where}: the first member is {member.name!r}, not bundle.json: not a bundle")
        if not member.isfile() or member.size > MAX_MANIFEST:
            raise BundleError(f"{where}: bundle.json is not a regular file of at most {MAX_MANIFEST} bytes")
        try:
            manifest = json.loads(tar.extractfile(member).read())
        except (ValueError, UnicodeDecodeError) as exc:
            raise BundleError(f"{where}: bundle.json is not JSON ({exc})") from None
        break
    if manifest is None:
        raise BundleError(f"{where}: no bundle.json: not a results bundle")
    runs = _check_manifest(manifest, where)
    listed = {rel: info for e in runs for rel, info in e["files"].items()}
    got: set[str] = set()
    for member in members:
        info = listed.get(member.name)
        if info is None or member.name in got:
            raise BundleError(f"{where}: member {member.name!r} is not listed in bundle.json (or listed once but "
                              f"present twice): refused, nothing imported")
        if not member.isfile():
            raise BundleError(f"{where}: member {member.name!r} is not a regular file (a link or a folder): "
                              f"refused")
        if member.size != info["bytes"]:
            raise BundleError(f"{where}: {member.name} has {member.size} bytes, bundle.json lists "
                              f"{info['bytes']}: the bundle is damaged")
        target = staging / member.name
        target.parent.mkdir(parents=True, exist_ok=True)
        if _copy(tar.extractfile(member), target, info["bytes"]) != info["sha256"]:
            raise BundleError(f"{where}: {member.name} does not match its hash: the bundle is damaged")
        got.add(member.name)
    missing = sorted(set(listed) - got)
    if missing:
        raise BundleError(f"{where}: listed file(s) missing from the archive: {missing[:3]}")
    return manifest


def check_provenance(manifest: dict[str, Any], accept_version: bool, where: str) -> str:
    """One line of provenance; a bundle of another library version or identity schema is refused unless accepted."""
    prov = manifest["provenance"]
    versions = prov.get("versions") if isinstance(prov.get("versions"), dict) else {}
    theirs, schema = versions.get("mtlprune"), prov.get("identity_schema")
    line = (f"bundle {Path(where).name}: profile {manifest.get('profile')!r}, {len(manifest['runs'])} runs, made "
            f"{prov.get('created')} on {prov.get('host')} ({', '.join(map(str, prov.get('devices') or [])) or '?'}), "
            f"mtlprune {theirs} at commit {str(prov.get('git_commit'))[:10]}, torch {versions.get('torch')}")
    if (theirs != __version__ or schema != SCHEMA) and not accept_version:
        raise BundleError(f"{where} was made by mtlprune {theirs} (identity schema {schema}); this is {__version__} "
                          f"(schema {SCHEMA}). Import it anyway with --accept-version (its runs must still hash to "
                          f"their ids).\n{line}")
    return line


def import_bundle(path: Path, accept_version: bool = False) -> dict[str, Any]:
    """Merge a bundle into the run store; returns counts of runs added and already present, the provenance line, and
    the runs the store completed differently while importing (kept)."""
    root = paths.runs_root()
    root.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(dir=root, prefix=".import-"))
    try:
        manifest = read_bundle(path, staging)
        line = check_provenance(manifest, accept_version, str(path))
        runs = manifest["runs"]
        for entry in runs:
            rid, seed = entry["run_id"], entry["seed"]
            run_stage = staging / "runs" / rid
            check_config(rid, (run_stage / paths.CONFIG).read_bytes(), str(path))
            seed_stage = run_stage / f"seed_{seed}"
            check_summary(rid, seed, (seed_stage / paths.SUMMARY).read_bytes(), str(path))
            if (seed_stage / paths.HISTORY).exists():
                check_history(rid, (seed_stage / paths.HISTORY).read_bytes(), str(path))
            if (seed_stage / paths.MODEL).exists():
                check_model(rid, seed_stage / paths.MODEL, str(path))
        conflicts = [f"{e['run_id']} seed {e['seed']}" for e in runs if _differs(staging, e)]
        if conflicts:
            raise BundleError(f"{path} conflicts with the run store {root}: the store holds other results of "
                              f"{', '.join(conflicts[:10])} (nothing imported)")
        added, present, kept = 0, 0, []
        for entry in runs:
            outcome = _move_in(staging, entry)
            added += outcome == "added"
            present += outcome == "present"
            if outcome == "kept":
                kept.append(f"{entry['run_id']} seed {entry['seed']}")
        return {"added": added, "present": present, "kept": kept, "provenance": line}
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def _differs(staging: Path, entry: dict[str, Any]) -> bool:
    """Whether the store already holds a different complete result of this run (summary bytes differ)."""
    mine = paths.seed_dir(entry["run_id"], entry["seed"]) / paths.SUMMARY
    theirs = staging / "runs" / entry["run_id"] / f"seed_{entry['seed']}" / paths.SUMMARY
    return mine.exists() and mine.read_bytes() != theirs.read_bytes()


def _move_in(staging: Path, entry: dict[str, Any]) -> str:
    """Move one staged run into the store under its lock: `added`, `present` (identical) or `kept` (the store
    completed another result of it meanwhile: the store's is kept)."""
    rid, seed = entry["run_id"], entry["seed"]
    seed_dir = paths.seed_dir(rid, seed)
    stage = staging / "runs" / rid
    with store.run_lock(seed_dir):
        if (seed_dir / paths.SUMMARY).exists():  # checked again under the lock: a run may have finished meanwhile
            return "kept" if _differs(staging, entry) else "present"
        if not (paths.run_dir(rid) / paths.CONFIG).exists():
            os.replace(stage / paths.CONFIG, paths.run_dir(rid) / paths.CONFIG)
        for stale in seed_dir.glob("checkpoint*.pt"):  # an interrupted local attempt of a run now complete
            stale.unlink()
        files = sorted((stage / f"seed_{seed}").iterdir(), key=lambda f: f.name == paths.SUMMARY)  # summary last
        for f in files:
            os.replace(f, seed_dir / f.name)
        (seed_dir / paths.FAILURE).unlink(missing_ok=True)
    return "added"
