"""Run identity: pinned ids, defaults omitted from the hash, overrides and their errors."""

from __future__ import annotations

from dataclasses import replace

import pytest

from mtlprune.config import RunConfig, TrainConfig, canonical, from_dict, to_dict, with_overrides
from mtlprune.profiles import make_config

# Pinned: these ids name cached runs on disk. If one changes, every cached run of it is orphaned; change a default
# only together with `SCHEMA` and say so in the change.
PINNED = {
    "smoke": "dense-a9fe7eb2bf96",
    "quick": "dense-7b7871e0e799",
    "full": "dense-fa73502b57df",
}


@pytest.mark.parametrize("profile", sorted(PINNED))
def test_run_ids_are_pinned(profile):
    assert make_config(profile).run_id == PINNED[profile]


def test_defaults_are_omitted_from_the_canonical_config():
    assert canonical(RunConfig()) == {}
    cfg = replace(RunConfig(), train=replace(TrainConfig(), iterations=7))
    assert canonical(cfg) == {"train": {"iterations": 7}}
    # setting a field to its default value gives the same id as not setting it
    same = replace(RunConfig(), train=replace(TrainConfig(), iterations=TrainConfig().iterations))
    assert same.run_id == RunConfig().run_id


def test_id_changes_with_meaning_and_kind_is_readable():
    a = make_config("quick")
    b = make_config("quick", overrides={"train.lr": 5e-4})
    assert a.run_id != b.run_id
    assert a.run_id.startswith("dense-") and len(a.run_id) == len("dense-") + 12


def test_overrides_coerce_types_and_reject_unknown_keys():
    cfg = with_overrides(RunConfig(), {"train.iterations": "50", "model.head_rates": [1, 3], "data.flip": "false"})
    assert cfg.train.iterations == 50 and cfg.model.head_rates == (1, 3) and cfg.data.flip is False
    with pytest.raises(ValueError, match="valid: .*iterations"):
        with_overrides(RunConfig(), {"train.itrations": 5})
    with pytest.raises(ValueError, match="expected an integer"):
        with_overrides(RunConfig(), {"train.iterations": 1.5})


def test_full_dict_round_trips():
    cfg = make_config("smoke", overrides={"model.backbone": "mobilenetv2"})
    assert from_dict(RunConfig, to_dict(cfg)) == cfg


def test_invalid_values_name_the_valid_ones():
    with pytest.raises(ValueError, match="valid: deeplab_resnet34, mobilenetv2, resnet_small"):
        make_config("quick", overrides={"model.backbone": "vgg"})
    with pytest.raises(ValueError, match="unknown profile 'huge'; valid: smoke, quick, full"):
        make_config("huge")
    with pytest.raises(ValueError, match="unknown pruning method 'nope'"):
        make_config("quick", "nope", 0.5)
    with pytest.raises(ValueError, match="train.iterations must be an integer >= 1"):
        make_config("quick", overrides={"train.iterations": 0})
    with pytest.raises(ValueError, match="dense method takes no sparsity"):
        make_config("quick", "dense", 0.5)
