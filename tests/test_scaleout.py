"""Scale-out: executors give the same summaries as running one by one, failures are reported without losing the other
runs (results bundles: `test_bundles.py`)."""

from __future__ import annotations

import json

import pytest

from mtlprune.core import paths
from mtlprune.runs.grid import run_pairs
from mtlprune.study import grids
from mtlprune.core.errors import GridError
from mtlprune.core.identity import run_id

GRID = dict(profile="smoke", methods=["magnitude_global", "random"], sparsities=[0.9], seeds=[0], extra_seeds=[])


def _metrics(pairs) -> dict:
    return {(run_id(cfg), s): json.loads((paths.seed_dir(run_id(cfg), s) / "summary.json").read_text())["metrics"]
            for cfg, s in pairs}


def _grid():
    return grids.pruning_grid(GRID["profile"], GRID["methods"], GRID["sparsities"], GRID["seeds"],
                              GRID["extra_seeds"])


@pytest.fixture
def one_thread():
    """Float reductions split over threads round differently: runs agree bit for bit at the same threads per run,
    which is one for a worker of `processes` on 2 cores with 2 workers and for a Ray task of one CPU."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.mark.parametrize("executor", ["processes", pytest.param("ray", marks=pytest.mark.slow)])
def test_an_executor_gives_the_summaries_of_local(executor, store, monkeypatch, one_thread):
    if executor == "ray":
        pytest.importorskip("ray")
    import os

    monkeypatch.setattr(os, "cpu_count", lambda: 2)  # 2 workers of one thread each, on any machine
    pairs = _grid()
    log = run_pairs(pairs, profile="smoke", progress=False, executor="local")
    local = _metrics(pairs + [(pairs[0][0].dense, 0)])
    monkeypatch.setenv("MTLPRUNE_RUNS", str(store.parent / executor))
    monkeypatch.setenv("MTLPRUNE_WORKERS", "2")
    other = run_pairs(pairs, profile="smoke", progress=False, executor=executor)
    assert _metrics(pairs + [(pairs[0][0].dense, 0)]) == local
    assert list(other.index) == list(log.index) and set(other["status"].str.split().str[0]) == {"trained"}
    again = run_pairs(pairs, profile="smoke", progress=False, executor=executor)
    assert set(again["status"]) == {"cached"}  # complete runs are never resubmitted


def test_local_packs_runs_that_pin_their_threads_with_the_same_numbers(store, monkeypatch):
    """Runs whose config pins fewer threads than the machine has cores run side by side (cores // threads processes);
    their summaries equal those of running them one after another, and unpinned runs are never packed."""
    import os

    from mtlprune.runs.executors import Job, packing
    from mtlprune.study.profiles import make_mdl_config

    monkeypatch.setattr(os, "cpu_count", lambda: 2)
    pairs = [(make_mdl_config("smoke", m, 0.5, overrides={"train.iterations": 8}), 0)
             for m in ("budget_aware", "frozen")]
    assert all(cfg.train.threads == 1 for cfg, _ in pairs)  # the profile pins them
    assert packing([Job(cfg, s, "smoke") for cfg, s in pairs]) == 2
    unpinned = [Job(make_mdl_config("smoke", "frozen", 0.5, overrides={"train.threads": 0}), 0, "smoke")] * 2
    assert packing(unpinned) == 1
    log = run_pairs(pairs, progress=False, profile="smoke", executor="local")
    assert set(log["status"].str.split().str[0]) == {"trained"}
    packed = {run_id(cfg): json.loads((paths.seed_dir(run_id(cfg), 0) / "summary.json").read_text()) for cfg, _ in pairs}
    assert {s["threads"] for s in packed.values()} == {1}
    monkeypatch.setenv("MTLPRUNE_RUNS", str(store.parent / "one_by_one"))
    monkeypatch.setattr(os, "cpu_count", lambda: 1)  # no room to pack: the same runs one after another
    run_pairs(pairs, progress=False, profile="smoke", executor="local")
    for cfg, _ in pairs:
        alone = json.loads((paths.seed_dir(run_id(cfg), 0) / "summary.json").read_text())
        assert alone["accuracy"] == packed[run_id(cfg)]["accuracy"]


def test_packed_multitask_runs_match_one_by_one_runs(store, monkeypatch):
    """Multi-task runs that pin their threads (Taskonomy's profiles: 1) are packed too, dense references first, and
    give the same numbers as the same runs one after another."""
    import os

    from mtlprune.runs.executors import Job, packing

    monkeypatch.setattr(os, "cpu_count", lambda: 2)
    pairs = grids.comparison_pairs("smoke", ["adapmtl", "magnitude_global"], [0, 1], 0.9, dataset="taskonomy")
    assert all(cfg.train.threads == 1 for cfg, _ in pairs)
    assert packing([Job(cfg, s, "smoke") for cfg, s in pairs]) == 2
    log = run_pairs(pairs, profile="smoke", progress=False, executor="local")
    assert all(st.startswith("trained") for st in log["status"])
    packed = {(run_id(cfg), s): json.loads((paths.seed_dir(run_id(cfg), s) / "summary.json").read_text())
              for cfg, s in pairs}
    assert {p["env"]["threads"] for p in packed.values()} == {1}
    monkeypatch.setenv("MTLPRUNE_RUNS", str(store.parent / "one_by_one"))
    monkeypatch.setattr(os, "cpu_count", lambda: 1)  # no room to pack
    run_pairs(pairs, profile="smoke", progress=False, executor="local")
    for (rid, s), summary in packed.items():
        alone = json.loads((paths.seed_dir(rid, s) / "summary.json").read_text())
        assert alone["metrics"] == summary["metrics"] and alone["sparsity"] == summary["sparsity"]


def test_a_failed_run_is_reported_and_the_others_are_kept(store):
    good = grids.pruning_grid("smoke", ["magnitude_global"], [0.9], [0], [])
    bad = grids.pruning_grid("smoke", ["random"], [0.9], [0], [], overrides={"train.lr": 1e30,
                                                                           "train.iterations": 1})
    with pytest.raises(GridError, match=r"random-.*FloatingPointError|dense-.*FloatingPointError") as err:
        run_pairs(good + bad, profile="smoke", progress=False)
    assert "not run: its dependency" in str(err.value)  # the pruned run of the diverged dense reference
    assert (paths.seed_dir(run_id(good[0][0]), 0) / "summary.json").exists()
