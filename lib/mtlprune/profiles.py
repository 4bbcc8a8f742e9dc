"""Profiles: smoke (tests and CI, seconds), quick (CPU study, the dense reference in <= 3 min on 2 cores) and full
(paper scale: real NYU-v2, DeepLab-ResNet34 + ASPP heads at width 1024, 20k iterations, batch 16, GPU).

A profile is only a way to build `RunConfig`s; the config values, not the profile name, define a run.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from .config import (DataConfig, ModelConfig, PruningConfig, RunConfig, TrainConfig, freeze_params, with_overrides)
from .data.nyuv2 import RoomsSpec

PROFILES = ("smoke", "quick", "full")

# The sparse phase: how a pruned run trains after (or while) it is pruned, the same for every method of a profile.
# quick: 80 iterations at batch 16 (about 1.2 epochs, ~12 s per run on 2 cores) so that 11 methods x 4 sparsities x seeds fit
# the 30-minute study; methods that may start from the dense reference do (a deviation for the from-scratch ones,
# which get the same short budget). full: the paper's schedule, 20k iterations of batch 16 for every method.
# Seeds of the study per profile: (seeds at every sparsity, extra seeds at the seed sparsity 0.9).
SEEDS = {"smoke": ([0], [1]), "quick": ([0], [1]), "full": ([0], [1, 2])}
SEED_SPARSITY = 0.9

SPARSE_PHASE = {
    "smoke": {"train.iterations": 4},
    "quick": {"train.iterations": 80, "train.batch_size": 16, "train.lr_schedule": "cosine"},
    "full": {},
}


# Loss-weighting parameters a profile sets unless the caller gives its own: AdapMTL's window is 2.5% of the run in the
# code (500 of 20k), which would be 2 noisy steps of quick's 80-step sparse phase; quick averages over 10% (8 steps).
# DWA needs two full periods before it moves: its 50-iteration default would never act in 80 steps; quick uses 8.
WEIGHTING_DEFAULTS = {"smoke": {}, "quick": {"adaptive": {"window": 0.1}, "dwa": {"period": 8}}, "full": {}}


def _base(profile: str) -> RunConfig:
    if profile == "smoke":
        return RunConfig(
            data=DataConfig(synthetic=RoomsSpec(n_train=40, n_test=12, height=24, width=32)),
            model=ModelConfig(width=4, head_width=8, head_rates=(1, 2)),
            train=TrainConfig(iterations=6, batch_size=8, eval_batch_size=16),
        )
    if profile == "quick":
        return RunConfig()  # the defaults *are* the quick profile (short canonical configs, stable ids)
    if profile == "full":
        # AdapMTL/DiSparse NYU-v2 recipe (adapmtl.md §1.6): 20k iterations, batch 16, Adam lr 1e-3 halved every 4k.
        return RunConfig(
            data=DataConfig(synthetic=None),
            model=ModelConfig(backbone="deeplab_resnet34", head_width=1024, head_rates=(6, 12, 18, 24), dropout=0.5),
            train=TrainConfig(iterations=20000, batch_size=16, lr=1e-3, lr_step=0.2, lr_gamma=0.5,
                              eval_batch_size=16),
        )
    raise ValueError(f"unknown profile {profile!r}; valid: {', '.join(PROFILES)}")


def make_config(profile: str, method: str = "dense", sparsity: float = 0.0, *,
                overrides: dict[str, Any] | None = None, method_params: dict[str, Any] | None = None,
                weighting: str | None = None, weighting_params: dict[str, Any] | None = None,
                sparse_overrides: dict[str, Any] | None = None) -> RunConfig:
    """The config of one run. `overrides` are dotted settings (e.g. {"model.backbone": "mobilenetv2"}) applied to
    the run and to the dense run it starts from, so both share data, architecture and schedule. `weighting=None` is
    the method's own loss weighting (`equal` unless the method names one, e.g. AdapMTL's `adaptive`).
    `sparse_overrides` change the pruned run only (e.g. its weight decay), never the dense reference it starts from."""
    from .validate import validate  # late import: validate needs the registries, which need config

    dense = with_overrides(_base(profile), overrides or {})
    if method == "dense":
        if sparse_overrides:
            raise ValueError("sparse_overrides apply to pruned runs only; use overrides for the dense reference")
        cfg = replace(dense, pruning=PruningConfig(method="dense", sparsity=sparsity,
                                                   params=freeze_params(method_params)))
    else:
        # user overrides win over the sparse-phase defaults (and apply to the dense run too)
        sparse = with_overrides(with_overrides(_base(profile), SPARSE_PHASE[profile]), overrides or {})
        sparse = with_overrides(sparse, sparse_overrides or {})
        cfg = replace(sparse, pruning=PruningConfig(method=method, sparsity=sparsity,
                                                    params=freeze_params(method_params)), dense=dense)
    from .pruning import STRATEGIES

    if method != "dense" and method in STRATEGIES.names():
        weighting = weighting or getattr(STRATEGIES.get(method), "default_weighting", None)
    if weighting is not None:
        wparams = weighting_params if weighting_params is not None else WEIGHTING_DEFAULTS[profile].get(weighting, {})
        cfg = replace(cfg, weighting=replace(cfg.weighting, name=weighting, params=freeze_params(wparams)))
    validate(cfg)
    return cfg


def generator_spec(profile: str) -> RoomsSpec | None:
    return _base(profile).data.synthetic
