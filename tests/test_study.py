"""Notebook parameters are validated in lib before anything runs: one clear message per bad value."""

from __future__ import annotations

import pytest

from mtlprune.study import grids as study


def test_pruning_grid_covers_every_method_sparsity_and_the_extra_seeds():
    pairs = study.pruning_grid("smoke", ["snip", "lth"], [0.5, 0.9], [0], [1], 0.9)
    got = sorted((c.kind, c.pruning.sparsity, s) for c, s in pairs)
    assert got == [("lth", 0.5, 0), ("lth", 0.9, 0), ("lth", 0.9, 1), ("snip", 0.5, 0), ("snip", 0.9, 0),
                   ("snip", 0.9, 1)]
    assert all(c.dense is not None and c.dense.kind == "dense" for c, _ in pairs)


@pytest.mark.parametrize("kwargs, message", [
    ({"methods": "snip"}, "methods must be a non-empty list"),
    ({"methods": ["nope"]}, "unknown pruning method 'nope'"),
    ({"sparsities": [0.5, 1.0]}, r"sparsities must be a non-empty list of numbers in \(0, 1\)"),
    ({"seeds": [-1]}, "seeds must be a non-empty list of non-negative integers"),
    ({"seed_sparsity": 0.8}, "seed_sparsity 0.8 must be one of sparsities"),
    ({"profile": "medium"}, "unknown profile 'medium'"),
])
def test_bad_notebook_parameters_are_named(kwargs, message):
    args = {"profile": "smoke", "methods": ["snip"], "sparsities": [0.5, 0.9], "seeds": None,
            "extra_seeds": [1], "seed_sparsity": 0.9, **kwargs}
    with pytest.raises(ValueError, match=message):
        study.pruning_grid(**args)


def test_profile_seeds():
    for profile in ("quick", "standard", "full"):  # every cell the book reports has 3 seeds
        assert study.default_seeds(profile) == [0, 1, 2] and study.default_seeds(profile, "extra") == []
    with pytest.raises(ValueError, match="valid: smoke, quick, standard, full"):
        study.dense_config("huge")
    with pytest.raises(ValueError, match="unknown setting"):
        study.dense_config("smoke", depth=3)
