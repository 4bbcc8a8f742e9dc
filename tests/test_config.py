"""Run identity: pinned fully resolved ids, every value and default in the hash, overrides and their errors."""

from __future__ import annotations

from dataclasses import replace

import pytest

from dataclasses import fields, is_dataclass

from mtlprune.core import identity
from mtlprune.core.config import RunConfig, TrainConfig, canonical, from_dict, to_dict, with_overrides
from mtlprune.core.identity import config_hash
from mtlprune.study.profiles import PROFILE_SETTINGS, make_config, make_mdl_config
from mtlprune.core.identity import run_id

# Pinned: these ids name cached runs on disk, hashed over the fully resolved configs (`identity`). One changes only
# when a value the run uses changes (a profile's setting, a dataclass default, a method's default hyperparameter) or
# `identity.SCHEMA` is bumped: say so in the change, since every cached run of it is recomputed.
PINNED = {
    # smoke: salted with the `pointwise_stride` revision (identity.REVISIONS): its 4-channel strided 1x1 layers
    # compute other (correct) gradients since the oneDNN defect was routed around; quick and full are unchanged.
    # AdapMTL (and STR): salted with the `soft_threshold` revision, threshold gradients summed in float64 by the kernel
    ("smoke", "dense"): "dense-4aab82bd5756",
    # quick: resized so that its results converge (width 8, heads 16, 24x32, sparse phase 800 at batch 32, float32),
    # then cut to fit 30 min on two AVX2 cores: ASPP rates (1, 2) on its 3x4 feature maps (rates 3 and 4 read mostly
    # padding there; 18 % less per step) and a dense reference of 3,000 iterations (its doubling test at 6,000)
    ("quick", "dense"): "dense-a7b59ba33b0f",
    ("full", "dense"): "dense-33457999c1a0",
    ("smoke", "adapmtl"): "adapmtl-c0071ec65b48",
    ("quick", "adapmtl"): "adapmtl-aeec699f6809",
    ("full", "adapmtl"): "adapmtl-bd7c96677f26",
}
# every profile: channels_last images (`memory_format`, other rounding: new ids; a contiguous config keeps its old id)
PINNED_MDL = {
    ("smoke", "budget_aware"): ("mdl-budget_aware-3e4f58e6280e", "mdlsource-57f170d384b7"),
    # quick: the real domains converted from installed packages (`data.packaged`) replaced the generated benchmark
    # quick's source trains on one thread (it was two), beside the dense references
    ("quick", "budget_aware"): ("mdl-budget_aware-e5b62a9cb757", "mdlsource-3b5062224358"),
    ("full", "individual"): ("mdl-individual-effa7477ee75", "mdlsource-e27b620851bd"),
}
# the same configs in the contiguous layout: their ids from before `memory_format` was a setting (quick's source
# changed its threads since)
PINNED_MDL_CONTIGUOUS = {
    ("smoke", "budget_aware"): ("mdl-budget_aware-aab01b75c691", "mdlsource-9245c32f0529"),
    ("full", "individual"): ("mdl-individual-c5d54a4e2f41", "mdlsource-fd973ae0d4d7"),
}


# Every profile's precision is explicit (quick: float32), so its ids are the same on every machine;
# `test_auto_precision_resolves_before_hashing` covers `auto`, which a user may still set
MACHINE_FREE: dict[str, dict[str, str]] = {}


@pytest.mark.parametrize("profile, method", sorted(PINNED))
def test_run_ids_are_pinned(profile, method):
    cfg = make_config(profile, method, 0.9 if method != "dense" else 0.0, overrides=MACHINE_FREE.get(profile))
    assert run_id(cfg) == PINNED[profile, method]


@pytest.mark.parametrize("method", ["adapmtl", "adapmtl_global_threshold", "adapmtl_layer_thresholds", "str"])
def test_soft_threshold_runs_are_salted_with_the_kernels_revision(method):
    """The compiled kernel sums the threshold gradients in float64 (other rounding than the float32 sums before), so
    every soft-threshold run gets a new id; the dense run it starts from and other methods keep theirs."""
    cfg = make_config("quick", method, 0.9, overrides={"model.width": 16})  # no routed layer at width 16
    assert identity.resolved(cfg)["revisions"] == {"soft_threshold": identity.REVISIONS["soft_threshold"]}
    assert "revisions" not in identity.resolved(cfg)["dense"]
    assert identity.resolved(make_config("smoke", method, 0.9))["revisions"] == {
        "pointwise_stride": 2, "soft_threshold": identity.REVISIONS["soft_threshold"]}


@pytest.mark.parametrize("profile, method", sorted(PINNED_MDL))
def test_multi_domain_ids_are_pinned(profile, method):
    cfg = make_mdl_config(profile, method, 0.5)
    assert (run_id(cfg), run_id(cfg.source)) == PINNED_MDL[profile, method]


@pytest.mark.parametrize("profile, method", sorted(PINNED_MDL_CONTIGUOUS))
def test_a_contiguous_multi_domain_config_keeps_the_id_it_had_before_the_layout_was_a_setting(profile, method):
    cfg = make_mdl_config(profile, method, 0.5, overrides={"train.memory_format": "contiguous",
                                                            "source.memory_format": "contiguous"})
    assert (run_id(cfg), run_id(cfg.source)) == PINNED_MDL_CONTIGUOUS[profile, method]


def _leaves(obj, prefix=()):
    """(path, value) of every leaf field of a config dataclass, recursively."""
    for f in fields(obj):
        value = getattr(obj, f.name)
        if is_dataclass(value):
            yield from _leaves(value, prefix + (f.name,))
        else:
            yield prefix + (f.name,), value


NAMED = {"weighting.name": "equal", "pruning.method": "adapmtl_global_threshold", "pruning.params": (("ramp", 0.25),),
         "weighting.params": (("window", 0.05),), "method.name": "ba2", "method.sharing": "intersection",
         "method.granularity": "slice", "train.lr_schedule": "constant", "model.backbone": "mobilenetv2"}


def _changed(value):
    if isinstance(value, bool):
        return not value
    if isinstance(value, int):
        return value + 1
    if isinstance(value, float):
        return value * 0.5 + 0.125
    if isinstance(value, str):
        return value + "_x"
    if isinstance(value, tuple):
        return value + (value[-1],) if value else ((),)
    return "changed"


def _replaced(obj, path, value):
    if len(path) == 1:
        return replace(obj, **{path[0]: value})
    return replace(obj, **{path[0]: _replaced(getattr(obj, path[0]), path[1:], value)})


@pytest.mark.parametrize("make", [lambda: make_config("quick", "adapmtl", 0.9), lambda: make_mdl_config("quick")],
                         ids=["multi-task", "multi-domain"])
def test_changing_any_value_or_default_changes_the_id(make):
    """With fully resolved ids a changed dataclass default is a changed value: every leaf field must move the id
    (a field left out of the hash would silently reuse runs trained under its old value)."""
    cfg = make()
    leaves = [(p, v) for p, v in _leaves(cfg) if p[0] != "dense"]
    assert len(leaves) > 30
    for path, value in leaves:
        other = _replaced(cfg, path, NAMED.get(".".join(path), _changed(value)))
        if path == ("weighting", "name"):  # another weighting does not take this one's parameters
            other = _replaced(other, ("weighting", "params"), ())
        assert config_hash(other) != config_hash(cfg), ".".join(path)


def test_method_and_weighting_defaults_are_part_of_the_id(monkeypatch):
    cfg = make_config("smoke", "adapmtl", 0.9)
    before = run_id(cfg)
    ident = identity.resolved(cfg)
    assert ident["pruning"]["params"]["project_every"] == 4 and ident["weighting"]["params"]["window"] == 0.025
    # the default given explicitly is the same run; another value is another run
    assert run_id(make_config("smoke", "adapmtl", 0.9, method_params={"project_every": 4})) == run_id(cfg)
    assert run_id(make_config("smoke", "adapmtl", 0.9, method_params={"project_every": 5})) != run_id(cfg)
    # a changed default of a weighting hyperparameter changes the id of every run that uses it
    import inspect

    from mtlprune.core.weighting import AdaptiveWeighting

    sig = inspect.signature(AdaptiveWeighting.__init__)
    params = [p.replace(default=0.05) if p.name == "window" else p for p in sig.parameters.values()]
    monkeypatch.setattr(AdaptiveWeighting.__init__, "__signature__", sig.replace(parameters=params), raising=False)
    identity.config_hash.cache_clear()
    assert run_id(make_config("smoke", "adapmtl", 0.9)) != before
    identity.config_hash.cache_clear()


def test_the_profiles_set_every_value_explicitly():
    """A profile never relies on a dataclass default: each sets every leaf field of the run config."""
    for profile, settings in PROFILE_SETTINGS.items():
        cfg = make_config(profile)
        leaves = {".".join(p) for p, _ in _leaves(cfg) if p[0] not in ("dense", "pruning", "weighting", "tasks")}
        leaves = {k for k in leaves if not k.startswith("data.synthetic.") or cfg.data.synthetic is not None}
        missing = {k for k in leaves if k not in settings and not k.startswith("data.synthetic.scene")
                   and k != "data.synthetic.version"}
        assert not missing, (profile, sorted(missing))


def test_defaults_are_omitted_from_the_canonical_config():
    assert canonical(RunConfig()) == {}
    cfg = replace(RunConfig(), train=replace(TrainConfig(), iterations=7))
    assert canonical(cfg) == {"train": {"iterations": 7}}


def test_id_changes_with_meaning_and_kind_is_readable():
    a = make_config("quick")
    b = make_config("quick", overrides={"train.lr": 5e-4})
    assert run_id(a) != run_id(b)
    assert run_id(a).startswith("dense-") and len(run_id(a)) == len("dense-") + 12


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
    with pytest.raises(ValueError, match="unknown profile 'huge'; valid: smoke, quick, standard, full"):
        make_config("huge")
    with pytest.raises(ValueError, match="unknown pruning method 'nope'"):
        make_config("quick", "nope", 0.5)
    with pytest.raises(ValueError, match="train.iterations must be an integer >= 1"):
        make_config("quick", overrides={"train.iterations": 0})
    with pytest.raises(ValueError, match="method .dense. prunes nothing and takes no sparsity"):
        make_config("quick", "dense", 0.5)


@pytest.mark.parametrize("native", [True, False])
def test_auto_precision_resolves_before_hashing(monkeypatch, native):
    """`train.precision=auto` is bf16 where it is native and float32 elsewhere; the id is that of the explicit value,
    so a run cached on one kind of machine is never reused on the other."""
    from mtlprune.study import profiles

    monkeypatch.setattr(profiles, "native_bf16", lambda: native)
    assert make_config("quick").train.precision == "float32"  # the profile's own value is explicit
    auto = make_config("quick", overrides={"train.precision": "auto"})
    assert auto.train.precision == ("bf16" if native else "float32")
    cfg = make_config("quick", "adapmtl", 0.9, overrides={"train.precision": "auto"})
    resolved = "bf16" if native else "float32"
    assert (cfg.train.precision, cfg.dense.train.precision) == (resolved, resolved)
    assert run_id(cfg) == run_id(make_config("quick", "adapmtl", 0.9, overrides={"train.precision": resolved}))
    assert (run_id(cfg) == PINNED["quick", "adapmtl"]) == (not native)
