"""Shared fixtures: every test writes under pytest's tmp dirs (generated data per session, runs per test)."""

from __future__ import annotations

import pytest

from mtlprune.data import loading
from mtlprune import runner
from mtlprune.profiles import make_config


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
