"""Results bundles are untrusted input: a bundle round-trips between run stores, and every way a stranger's bundle can
be wrong or hostile is refused before anything reaches the store (path traversal, a pickled checkpoint, forged or
non-finite summaries, an unlisted or oversized member, a damaged archive, a malformed manifest, another library
version), with one message naming why; a run the store completes while an import runs is kept."""

from __future__ import annotations

import hashlib
import io
import json
import os
import tarfile
import tracemalloc
from pathlib import Path

import pytest
import torch

from mtlprune.core import paths
from mtlprune.core.identity import run_id
from mtlprune.core.runtime import Runtime
from mtlprune.render.cli import main
from mtlprune.runs import bundles, store as store_mod
from mtlprune.runs import multitask as runner
from mtlprune.runs.bundles import BundleError
from mtlprune.runs.grid import run_pairs
from mtlprune.study import grids
from mtlprune.core.errors import CacheError
from mtlprune.study.profiles import make_config


@pytest.fixture(scope="module")
def home(tmp_path_factory, data_home):
    """A smoke grid (a dense reference and one pruned run) and its bundle, made once for the module."""
    root = tmp_path_factory.mktemp("bundle_home")
    saved = {k: os.environ.get(k) for k in ("MTLPRUNE_DATA", "MTLPRUNE_RUNS")}
    os.environ.update(MTLPRUNE_DATA=str(data_home), MTLPRUNE_RUNS=str(root / "runs"))
    try:
        pairs = grids.pruning_grid("smoke", ["magnitude_global"], [0.9], [0], [])
        run_pairs(pairs, profile="smoke", progress=False)
        archive = bundles.export_bundle("smoke", root / "smoke.tar.gz")
        return {"root": root, "pairs": pairs, "archive": archive}
    finally:
        for k, v in saved.items():
            os.environ.pop(k, None) if v is None else os.environ.__setitem__(k, v)


def _members(archive: Path) -> tuple[dict, dict[str, bytes]]:
    with tarfile.open(archive) as tar:
        files = {m.name: tar.extractfile(m).read() for m in tar.getmembers()}
    return json.loads(files.pop("bundle.json")), files


def _write(path: Path, manifest: dict, files: dict[str, bytes], relist: bool = True, extra: list = ()) -> Path:
    """A bundle from `manifest` and `files`; `relist` lists every file of a run with its true hash and size."""
    if relist:
        for entry in manifest["runs"]:
            for rel in list(entry["files"]):
                if rel in files:
                    entry["files"][rel] = {"sha256": hashlib.sha256(files[rel]).hexdigest(), "bytes": len(files[rel])}
    with tarfile.open(path, "w:gz") as tar:
        for name, data in [("bundle.json", json.dumps(manifest).encode()), *files.items(), *extra]:
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return path


def _store_files(root: Path) -> set[str]:
    return {str(p.relative_to(root)) for p in root.rglob("*") if p.is_file()} if root.exists() else set()


@pytest.fixture
def fresh(store):
    """This test's (empty) run store; after a refused import it must still hold nothing."""
    return store


def _summary_rel(manifest: dict, which: int = 0) -> str:
    return next(r for r in manifest["runs"][which]["files"] if r.endswith("summary.json"))


def test_a_bundle_round_trips_and_is_idempotent(home, fresh):
    manifest, _ = _members(home["archive"])
    assert len(manifest["runs"]) == 2 and manifest["provenance"]["identity_schema"]
    assert not any("checkpoint" in rel for e in manifest["runs"] for rel in e["files"])  # no checkpoint travels
    counts = bundles.import_bundle(home["archive"])
    assert (counts["added"], counts["present"], counts["kept"]) == (2, 0, [])
    assert "mtlprune" in counts["provenance"] and "commit" in counts["provenance"]
    for cfg, seed in home["pairs"]:
        mine = paths.seed_dir(run_id(cfg), seed) / "summary.json"
        theirs = home["root"] / "runs" / run_id(cfg) / f"seed_{seed}" / "summary.json"
        assert mine.read_bytes() == theirs.read_bytes()
    again = bundles.import_bundle(home["archive"])
    assert (again["added"], again["present"]) == (0, 2)
    assert not list(fresh.glob(".import-*"))  # staging is removed


def test_a_conflicting_store_refuses_the_whole_import(home, fresh):
    bundles.import_bundle(home["archive"])
    summary = paths.seed_dir(run_id(home["pairs"][0][0]), 0) / "summary.json"
    summary.write_text(summary.read_text().replace('"seed": 0', '"seed": 0, "edited": true'))
    with pytest.raises(BundleError, match="conflicts"):
        bundles.import_bundle(home["archive"])


@pytest.mark.parametrize("where", ["member", "under the seed", "run id"])
def test_path_traversal_writes_nothing_outside_the_store(where, home, fresh, tmp_path):
    manifest, files = _members(home["archive"])
    entry = manifest["runs"][0]
    rid = entry["run_id"]
    escape = fresh.parent / "escaped.txt"
    if where == "run id":
        new = "../../escaped"
        files = {rel.replace(rid, new): data for rel, data in files.items()}
        entry["files"] = {rel.replace(rid, new): info for rel, info in entry["files"].items()}
        entry["run_id"] = new
    else:
        rel = f"runs/../../{escape.name}" if where == "member" else f"runs/{rid}/seed_0/../../../{escape.name}"
        files[rel] = b"owned"
        entry["files"][rel] = {}
    bad = _write(tmp_path / "bad.tar.gz", manifest, files)
    with pytest.raises(BundleError, match="not a run id|is not a file of run"):
        bundles.import_bundle(bad)
    assert not escape.exists() and not list(fresh.parent.rglob("escaped*"))
    assert _store_files(fresh) == set()


class _Payload:
    """A pickle that creates a file when it is unpickled."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (open, (str(self.marker), "w"))


def test_a_pickled_checkpoint_never_travels_nor_runs(home, fresh, tmp_path, smoke_dense):
    marker = tmp_path / "payload-ran"
    buf = io.BytesIO()
    torch.save({"model": _Payload(marker)}, buf)
    manifest, files = _members(home["archive"])
    rel = f"runs/{manifest['runs'][0]['run_id']}/seed_0/checkpoint.pt"
    files[rel] = buf.getvalue()
    manifest["runs"][0]["files"][rel] = {}
    with pytest.raises(BundleError, match="is not a file of run"):
        bundles.import_bundle(_write(tmp_path / "ckpt.tar.gz", manifest, files))
    assert not marker.exists()
    # the same pickle placed by hand as an incomplete run's checkpoint: the resume refuses it, nothing executes
    cfg = make_config("smoke", "magnitude_global", 0.9)
    out = paths.seed_dir(run_id(cfg), 0)
    out.mkdir(parents=True)
    (out / "checkpoint.pt").write_bytes(buf.getvalue())
    with pytest.raises(CacheError, match="checkpoint .* is unreadable"):
        runner.run(cfg, 0, Runtime(progress=False))
    assert not marker.exists()


@pytest.mark.parametrize("damage, named", [
    ("nan metric", "non-finite or missing values at metrics/seg/miou"),
    ("not json", "not valid"),
    ("another run id", "it is the summary of"),
    ("another seed", "it is the summary of"),
    ("missing key", "missing key"),
])
def test_a_forged_summary_is_refused(damage, named, home, fresh, tmp_path):
    manifest, files = _members(home["archive"])
    rel = _summary_rel(manifest)
    summary = json.loads(files[rel])
    if damage == "nan metric":
        summary["metrics"]["seg"]["miou"] = None  # how NaN reaches JSON
    elif damage == "another run id":
        summary["run_id"] = manifest["runs"][1]["run_id"]
    elif damage == "another seed":
        summary["seed"] = 1
    elif damage == "missing key":
        del summary["metrics"]
    files[rel] = b"{not json" if damage == "not json" else json.dumps(summary).encode()
    with pytest.raises(BundleError, match=named):
        bundles.import_bundle(_write(tmp_path / "forged.tar.gz", manifest, files))
    assert _store_files(fresh) == set()


def test_a_run_id_that_is_not_the_hash_of_its_config_is_refused(home, fresh, tmp_path):
    manifest, files = _members(home["archive"])
    rel = next(r for r in manifest["runs"][0]["files"] if r.endswith("config.json"))
    config = json.loads(files[rel])
    config["full"]["train"]["lr"] = 0.5  # a config that hashes to another id
    files[rel] = json.dumps(config).encode()
    with pytest.raises(BundleError, match="hashes to"):
        bundles.import_bundle(_write(tmp_path / "renamed.tar.gz", manifest, files))


def test_an_unlisted_member_is_refused_without_being_read(home, fresh, tmp_path):
    manifest, files = _members(home["archive"])
    big = _write(tmp_path / "big.tar.gz", manifest, files, extra=[("runs/extra.bin", bytes(200 << 20))])
    assert big.stat().st_size < 2 << 20  # 200 MB of zeros in a small archive
    tracemalloc.start()
    try:
        with pytest.raises(BundleError, match="not listed"):
            bundles.import_bundle(big)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 50 << 20, f"{peak / 2 ** 20:.0f} MiB held while refusing it"
    assert _store_files(fresh) == set()


def test_a_member_larger_than_listed_or_with_another_hash_is_refused(home, fresh, tmp_path):
    manifest, files = _members(home["archive"])
    rel = _summary_rel(manifest)
    listed = dict(manifest["runs"][0]["files"][rel])
    files[rel] = files[rel] + b" "
    manifest["runs"][0]["files"][rel] = listed
    with pytest.raises(BundleError, match="bytes, bundle.json lists"):
        bundles.import_bundle(_write(tmp_path / "size.tar.gz", manifest, files, relist=False))
    files[rel] = files[rel][:-1].replace(b'"seed": 0', b'"seed": 1')  # the listed size, other bytes
    manifest["runs"][0]["files"][rel] = {**listed}
    with pytest.raises(BundleError, match="does not match its hash|not valid"):
        bundles.import_bundle(_write(tmp_path / "hash.tar.gz", manifest, files, relist=False))


@pytest.mark.parametrize("damage, named", [
    ("truncated", "damaged or not a complete archive|not a results bundle"),
    ("manifest a list", "not a JSON object"),
    ("runs not a list", "must be a non-empty list"),
    ("entry without seed", "seed None is not an integer"),
    ("seed out of range", "is not an integer in"),
    ("not an archive", "not a results bundle"),
    ("old format", "bundle format 1"),
])
def test_a_malformed_bundle_is_one_clear_error(damage, named, home, fresh, tmp_path, capsys):
    manifest, files = _members(home["archive"])
    path = tmp_path / "bad.tar.gz"
    if damage == "truncated":
        path.write_bytes(home["archive"].read_bytes()[:3000])
    elif damage == "not an archive":
        path.write_text("hello")
    else:
        if damage == "manifest a list":
            manifest = [manifest]
        elif damage == "runs not a list":
            manifest["runs"] = {"a": 1}
        elif damage == "entry without seed":
            del manifest["runs"][0]["seed"]
        elif damage == "seed out of range":
            manifest["runs"][0]["seed"] = 2 ** 40
        elif damage == "old format":
            manifest["format"] = 1
        _write(path, manifest, files, relist=False)
    with pytest.raises(BundleError, match=named):
        bundles.import_bundle(path)
    assert main(["bundle", "import", str(path)]) == 2  # the command line: one line, no traceback
    err = capsys.readouterr().err
    assert err.startswith("error: ") and "Traceback" not in err
    assert _store_files(fresh) - {p for p in _store_files(fresh) if p.endswith(".lock")} == set()


def test_a_bundle_of_another_library_version_needs_a_flag(home, fresh, tmp_path, capsys):
    manifest, files = _members(home["archive"])
    manifest["provenance"]["versions"]["mtlprune"] = "9.9.9"
    other = _write(tmp_path / "other.tar.gz", manifest, files, relist=False)
    with pytest.raises(BundleError, match=r"made by mtlprune 9\.9\.9.*--accept-version"):
        bundles.import_bundle(other)
    assert _store_files(fresh) == set()
    assert main(["bundle", "import", str(other), "--accept-version"]) == 0
    out = capsys.readouterr().out
    assert "mtlprune 9.9.9" in out and "imported 2 runs" in out  # the provenance is shown


def test_a_run_the_store_completes_during_the_import_is_kept(home, fresh, monkeypatch):
    """The conflict check is repeated under each run's lock: a trainer that finishes the same run while the import
    runs keeps its result (the import says so), it is never overwritten."""
    cfg = home["pairs"][0][0]
    mine = paths.seed_dir(run_id(cfg), 0) / "summary.json"
    move = bundles._move_in

    def trainer_finishes_meanwhile(staging, entry):  # between the pre-check and this run's move
        if entry["run_id"] == run_id(cfg):
            mine.parent.mkdir(parents=True, exist_ok=True)
            theirs = home["root"] / "runs" / run_id(cfg) / "seed_0" / "summary.json"
            mine.write_text(theirs.read_text().replace('"seed": 0', '"seed": 0, "trained": "here"'))
        return move(staging, entry)

    monkeypatch.setattr(bundles, "_move_in", trainer_finishes_meanwhile)
    counts = bundles.import_bundle(home["archive"])
    assert counts["kept"] == [f"{run_id(cfg)} seed 0"] and counts["added"] == 1
    assert '"trained": "here"' in mine.read_text()


def test_export_refuses_a_corrupt_run(home, fresh, tmp_path):
    bundles.import_bundle(home["archive"])
    cfg = home["pairs"][0][0]
    history = paths.seed_dir(run_id(cfg), 0) / "history.jsonl"
    history.write_text(history.read_text() + "{broken\n")
    with pytest.raises(BundleError, match="the history of .* is not valid.*rm -r"):
        bundles.export_bundle("smoke", tmp_path / "out.tar.gz")
    history.write_text(history.read_text().replace("{broken\n", ""))
    config = paths.run_dir(run_id(cfg)) / "config.json"
    config.write_text(config.read_text()[:-20])
    with pytest.raises(BundleError, match="config.json of .* is not valid"):
        bundles.export_bundle("smoke", tmp_path / "out.tar.gz")
    assert not list(tmp_path.glob("out.tar.gz*"))  # no archive, no temporary file


def test_export_to_a_folder_or_under_a_file_is_one_clear_error(home, fresh, tmp_path, capsys):
    bundles.import_bundle(home["archive"])
    assert main(["bundle", "export", str(tmp_path), "--profile", "smoke"]) == 2
    assert "is a folder" in capsys.readouterr().err
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    assert main(["bundle", "export", str(blocker / "b.tar.gz"), "--profile", "smoke"]) == 2
    assert "is not a folder" in capsys.readouterr().err
    assert not list(tmp_path.rglob("*.tar.gz*"))  # nothing half-written


def test_one_crafted_bundle_imports_nothing_and_says_why(home, fresh, tmp_path, capsys):
    """A traversal path, a pickled checkpoint and a NaN summary in one bundle: nothing is imported; the first problem
    is named."""
    manifest, files = _members(home["archive"])
    rel = _summary_rel(manifest)
    summary = json.loads(files[rel])
    summary["metrics"]["seg"]["miou"] = None
    files[rel] = json.dumps(summary).encode()
    rid = manifest["runs"][1]["run_id"]
    for name, data in ((f"runs/{rid}/seed_0/checkpoint.pt", b"pickle"), ("runs/../../escaped.txt", b"owned")):
        files[name] = data
        manifest["runs"][1]["files"][name] = {}
    crafted = _write(tmp_path / "crafted.tar.gz", manifest, files)
    assert main(["bundle", "import", str(crafted)]) == 2
    err = capsys.readouterr().err
    assert "refused" in err and "Traceback" not in err
    assert _store_files(fresh) == set() and not (fresh.parent / "escaped.txt").exists()
