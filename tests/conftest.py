"""Shared fixtures: every test writes under pytest's tmp dirs (generated data per session, runs per test); the smoke
dense reference is trained once per session and copied into the stores of the tests that start from it."""

from __future__ import annotations

import os
import shutil

import pytest

from mtlprune.core import paths
from mtlprune.runs import multitask as runner
from mtlprune.core.data import loading
from mtlprune.study.profiles import make_config
from mtlprune.core.runtime import Runtime
from mtlprune.core.identity import run_id


@pytest.fixture(scope="session")
def data_home(tmp_path_factory):
    return tmp_path_factory.mktemp("data")


@pytest.fixture(autouse=True)
def store(data_home, tmp_path, monkeypatch):
    """Generated datasets are shared by the session; the run store is fresh for every test."""
    monkeypatch.setenv("MTLPRUNE_DATA", str(data_home))
    monkeypatch.setenv("MTLPRUNE_RUNS", str(tmp_path / "runs"))
    monkeypatch.setenv("MTLPRUNE_NYUV2", str(tmp_path / "no-nyuv2-here"))
    loading._cached_split.cache_clear()
    return tmp_path / "runs"


@pytest.fixture
def smoke_cfg():
    return make_config("smoke")


@pytest.fixture(scope="session")
def _session_dense(data_home, tmp_path_factory):
    """The smoke dense reference, seed 0, trained once for the whole session (in its own run store)."""
    runs = tmp_path_factory.mktemp("session_runs")
    saved = {k: os.environ.get(k) for k in ("MTLPRUNE_DATA", "MTLPRUNE_RUNS")}
    os.environ.update(MTLPRUNE_DATA=str(data_home), MTLPRUNE_RUNS=str(runs))
    try:
        cfg = make_config("smoke")
        runner.run(cfg, 0, Runtime(progress=False))
        return paths.run_dir(run_id(cfg))
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


@pytest.fixture
def smoke_dense(_session_dense, store):
    """This test's store, holding the session's trained smoke dense reference (seed 0)."""
    shutil.copytree(_session_dense, store / _session_dense.name)
    return make_config("smoke")
