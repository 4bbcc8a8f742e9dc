"""Runs: the CLI contract, the cache (never retrain), resume after a kill, corrupt cache entries, the lock."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time

import pytest

from mtlprune.runs import store as store_mod
from mtlprune.core import paths
from mtlprune.runs import multitask as runner
from mtlprune.study.profiles import make_config
from mtlprune.runs.results import load_summaries
from mtlprune.core.errors import CacheError
from mtlprune.core.runtime import Runtime
from mtlprune.core.identity import run_id

QUIET = Runtime(progress=False)
METRICS = {"seg": {"miou", "pixacc"}, "depth": {"abs_err", "rel_err", "delta1", "delta2", "delta3"},
           "normal": {"angle_mean", "angle_median", "within_11_25", "within_22_5", "within_30"}}


def _cli(*args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "mtlprune", *args], capture_output=True, text=True,
                          env={**os.environ, **(env or {})}, cwd=paths.REPO_ROOT, timeout=300)


def test_cli_run_prints_the_summary_contract_as_last_json_line():
    proc = _cli("run", "--profile", "smoke", "--method", "dense", "--seed", "0", "--json")
    assert proc.returncode == 0, proc.stderr
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    assert out["run_id"] == run_id(make_config("smoke"))
    for task, names in METRICS.items():
        assert names <= set(out["metrics"][task])
    assert set(out["delta_t"]) == {"seg", "depth", "normal", "mean"} and out["delta_t"]["mean"] == 0.0
    assert out["sparsity"]["overall"] == 0.0
    assert set(out["sparsity"]["components"]) == {"backbone", "seg", "depth", "normal"}
    assert all(v == 0.0 for v in out["sparsity"]["components"].values())


def test_cli_rejects_bad_values_with_the_valid_ones():
    proc = _cli("run", "--profile", "smoke", "--method", "nope")
    assert proc.returncode == 2 and "invalid choice: 'nope'" in proc.stderr and "dense" in proc.stderr
    proc = _cli("run", "--profile", "smoke", "--set", "model.backbone=vgg")
    assert proc.returncode == 2 and "valid: deeplab_resnet34, mobilenetv2, resnet_small" in proc.stderr
    proc = _cli("run", "--profile", "smoke", "--sparsity", "0.9")
    assert proc.returncode == 2 and "method 'dense' prunes nothing and takes no sparsity" in proc.stderr


def test_full_profile_without_real_data_names_both_fixes(tmp_path):
    proc = _cli("run", "--profile", "full", "--set", "train.iterations=1", env={"MTLPRUNE_NYUV2": str(tmp_path)})
    assert proc.returncode == 2
    assert "python -m mtlprune generate" in proc.stderr and "train/{image,label,depth,normal}" in proc.stderr


def test_a_completed_run_is_never_retrained(smoke_cfg, monkeypatch):
    first = runner.run(smoke_cfg, 0, QUIET)
    monkeypatch.setattr(runner, "fit", lambda *a, **k: pytest.fail("a cached run was retrained"))
    again = runner.run(smoke_cfg, 0, QUIET)
    assert again == first
    df = load_summaries()
    assert set(df["run_id"]) == {run_id(smoke_cfg)} and set(df["seed"]) == {0}
    assert {"miou", "delta_t", "sparsity"} <= set(df["metric"])


def test_same_seed_same_numbers_different_seed_different(smoke_cfg, store, monkeypatch):
    a = runner.run(smoke_cfg, 0, QUIET)["metrics"]
    monkeypatch.setenv("MTLPRUNE_RUNS", str(store.parent / "runs2"))
    assert runner.run(smoke_cfg, 0, QUIET)["metrics"] == a
    assert runner.run(smoke_cfg, 1, QUIET)["metrics"] != a


@pytest.mark.slow
@pytest.mark.parametrize("method", ["dense", "disparse_dynamic", "str", "adapmtl"])
def test_a_killed_run_resumes_and_matches_an_uninterrupted_one(method, store, monkeypatch):
    """SIGKILL after the first checkpoint, rerun: it resumes (masks, thresholds, RNG streams restored) and ends with
    exactly the numbers of a run that was never interrupted."""
    sparsity = [] if method == "dense" else ["--sparsity", "0.9"]
    sets = ["--method", method, *sparsity, "--set", "train.iterations=40", "--no-progress", "--json"]
    args = [sys.executable, "-m", "mtlprune", "run", "--profile", "smoke", *sets]
    cfg = make_config("smoke", method, 0.9 if sparsity else 0.0, overrides={"train.iterations": 40})
    ckpt = paths.seed_dir(run_id(cfg), 0) / "checkpoint.pt"
    proc = subprocess.Popen(args, cwd=paths.REPO_ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    deadline = time.time() + 120
    while not ckpt.exists() and time.time() < deadline and proc.poll() is None:
        time.sleep(0.02)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert ckpt.exists() and not (ckpt.parent / "summary.json").exists(), "kill came too late to test resuming"
    resumed = json.loads(_cli("run", "--profile", "smoke", *sets).stdout.strip().splitlines()[-1])
    summary = json.loads((ckpt.parent / "summary.json").read_text())
    assert summary["resumed_from_step"] > 0
    monkeypatch.setenv("MTLPRUNE_RUNS", str(store.parent / "uninterrupted"))
    straight = json.loads(_cli("run", "--profile", "smoke", *sets).stdout.strip().splitlines()[-1])
    # The checkpoint restores weights, masks, optimizer, schedule and every RNG: resuming changes nothing
    assert resumed["metrics"] == straight["metrics"]
    assert resumed["sparsity"] == straight["sparsity"]


def test_corrupt_summary_and_checkpoint_name_the_fix(smoke_cfg):
    runner.run(smoke_cfg, 0, QUIET)
    summary = runner.summary_path(smoke_cfg, 0)
    summary.write_text('{"run_id": "dense-')
    with pytest.raises(CacheError, match=f"rm '{summary}'"):
        runner.run(smoke_cfg, 0, QUIET)
    summary.unlink()
    ckpt = summary.parent / "checkpoint.pt"
    ckpt.write_bytes(b"garbage")
    with pytest.raises(CacheError, match=f"rm '{ckpt}'"):
        runner.run(smoke_cfg, 0, QUIET)
    ckpt.unlink()
    assert runner.run(smoke_cfg, 0, QUIET)["resumed_from_step"] == 0


def test_the_lock_makes_a_second_writer_wait(tmp_path):
    events = []

    def hold():
        with store_mod.run_lock(tmp_path / "run"):
            events.append("a-in")
            time.sleep(0.5)
            events.append("a-out")

    t = threading.Thread(target=hold)
    t.start()
    time.sleep(0.1)
    # flock locks belong to open file descriptions, so a second open in this process contends like another process
    with store_mod.run_lock(tmp_path / "run"):
        events.append("b-in")
    t.join()
    assert events == ["a-in", "a-out", "b-in"]


_ORPHAN_SCRIPT = """
import concurrent.futures as cf, multiprocessing as mp, os, time
from mtlprune.runs import executors
if __name__ == "__main__":
    pool = cf.ProcessPoolExecutor(1, mp_context=mp.get_context("spawn"), initializer=executors._init_worker,
                                  initargs=(1, os.getpid()))
    print(pool.submit(os.getpid).result(), flush=True)
    pool.submit(time.sleep, 120)  # a long run in the worker
    time.sleep(0.5)
    os._exit(0)  # the parent dies without shutting its pool down (as under kill -9)
"""


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/status") as f:
            return next(line for line in f if line.startswith("State:")).split()[1] != "Z"  # a zombie has stopped
    except FileNotFoundError:
        return False


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")
def test_a_worker_stops_when_the_process_that_started_it_dies():
    """A study killed mid-grid leaves no worker computing unseen: each spawned worker watches its parent."""
    out = subprocess.run([sys.executable, "-c", _ORPHAN_SCRIPT], capture_output=True, text=True, timeout=60)
    worker = int(out.stdout.split()[0])
    deadline = time.monotonic() + 10
    while _alive(worker) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert not _alive(worker)
