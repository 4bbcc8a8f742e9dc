"""Profiles: smoke (tests and CI, seconds), quick (CPU study, the dense reference in <= 3 min on 2 cores) and full
(paper scale: real NYU-v2, DeepLab-ResNet34 + ASPP heads at width 1024, 20k iterations, batch 16, GPU).

A profile is only a way to build `RunConfig`s; the config values, not the profile name, define a run.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import torch

from .config import PruningConfig, RunConfig, freeze_params, with_overrides
from .data.nyuv2 import RoomsSpec

PROFILES = ("smoke", "quick", "standard", "full")

# The sparse phase: how a pruned run trains after (or while) it is pruned, the same for every method of a profile.
# Its length B is chosen by measurement (the budget chapter, `evidence.choose_budget`): the smallest length in
# `BUDGETS` at which the ranking of the core methods no longer changes beyond the intervals when it doubles. The value
# here is the one that measurement picked (the chapter recomputes it from the runs and says if they disagree).
# quick/standard: B = 100 iterations at batch 16 (1.5 epochs) with a cosine schedule from the dense learning rate
# (measured on a grid of 50/100/200/400 with 4 methods x 3 seeds: the ranking holds from 100 on, with tau = 1 at
# 100 -> 200 and 200 -> 400; at 50 three of the four methods collapse to chance).
# full: the paper's schedule, 20k iterations of batch 16 for every method. Methods that may start from the dense
# reference do (a deviation for the from-scratch ones, which get the same budget).
SPARSE_PHASE = {
    "smoke": {"train.iterations": 4},
    "quick": {"train.iterations": 100, "train.batch_size": 16, "train.lr_schedule": "cosine"},
    "full": {},
}
SPARSE_PHASE["standard"] = SPARSE_PHASE["quick"]  # standard = quick's runs, every method, level and ablation

# The sparse-phase lengths the budget chapter measures (B/4, B/2, B, 2B around the profile's B).
BUDGETS = {"smoke": (2, 4, 8), "quick": (25, 50, 100, 200), "standard": (25, 50, 100, 200, 400),
           "full": (5000, 10000, 20000, 40000)}

# Seeds of the study per profile: (seeds at every sparsity, extra seeds at the seed sparsity 0.9). Every cell the
# book reports has >= 3 seeds, except smoke's (CI checks the code paths, not the numbers).
SEEDS = {"smoke": ([0, 1], []), "quick": ([0, 1, 2], []), "standard": ([0, 1, 2], []), "full": ([0, 1, 2], [])}
SEED_SPARSITY = 0.9

# The methods the evidence rests on: AdapMTL, the paper's baselines (SNIP, LTH, IMP, DiSparse dynamic, the paper's
# DiSparse row) and the two closest generic ones (global magnitude, STR). quick's budget chapter measures AdapMTL and
# the two generic ones (the 30-minute budget; SNIP ranked last at every length in the full grid's measurement).
CORE_METHODS = ("adapmtl", "snip", "lth", "imp", "disparse_dynamic", "magnitude_global", "str")
BUDGET_METHODS = {"smoke": ("adapmtl", "magnitude_global"), "quick": ("adapmtl", "magnitude_global", "str"),
                  "standard": CORE_METHODS, "full": CORE_METHODS}
# The sparsity levels of the standard profile's sparsity grid (plotted against achieved sparsity).
LEVELS = {"smoke": (0.9,), "quick": (0.9,), "standard": (0.5, 0.8, 0.9, 0.95, 0.98),
          "full": (0.5, 0.8, 0.9, 0.95, 0.98)}


# Loss-weighting parameters a profile sets unless the caller gives its own: AdapMTL's window is 2.5% of the run in the
# code (500 of 20k), which would be 2-3 noisy steps of quick's 100-step sparse phase; quick averages over 10% (10 steps).
# DWA needs two full periods before it moves: its 50-iteration default would never act in 100 steps; quick uses 8.
WEIGHTING_DEFAULTS = {"smoke": {}, "quick": {"adaptive": {"window": 0.1}, "dwa": {"period": 8}}, "full": {}}
WEIGHTING_DEFAULTS["standard"] = WEIGHTING_DEFAULTS["quick"]


# Every value a profile relies on is an explicit override here, never a dataclass default: a profile's runs do not
# change when a default changes, and the ids (`identity`, fully resolved) change exactly when a value does.
PROFILE_SETTINGS: dict[str, dict[str, Any]] = {
    "smoke": {
        "data.synthetic.n_train": 40, "data.synthetic.n_test": 12, "data.synthetic.height": 24,
        "data.synthetic.width": 32, "data.synthetic.seed": 0,
        "data.dataset": "nyuv2", "data.val_fraction": 0.1, "data.split_seed": 0,
        "data.flip": True,
        "model.backbone": "resnet_small", "model.width": 4, "model.output_stride": 8, "model.head": "aspp",
        "model.head_width": 8, "model.head_rates": (1, 2), "model.dropout": 0.0,
        "train.iterations": 6, "train.batch_size": 8, "train.lr": 1e-3, "train.betas": (0.9, 0.999),
        "train.weight_decay": 1e-4, "train.lr_schedule": "step", "train.lr_step": 0.2, "train.lr_gamma": 0.5,
        "train.eval_batch_size": 16, "train.precision": "float32",
        "train.memory_format": "channels_last", "train.threads": 0,
    },
    # quick: the CPU study. The dense reference trains 1500 iterations (~90 s per seed on 2 cores): the validation
    # plateau criterion of `evidence.plateau` holds there (the dense chapter shows it per seed; 600 did not)
    "quick": {
        "data.synthetic.n_train": 1200, "data.synthetic.n_test": 300, "data.synthetic.height": 48,
        "data.synthetic.width": 64, "data.synthetic.seed": 0,
        "data.dataset": "nyuv2", "data.val_fraction": 0.1, "data.split_seed": 0,
        "data.flip": True,
        "model.backbone": "resnet_small", "model.width": 16, "model.output_stride": 8, "model.head": "aspp",
        "model.head_width": 32, "model.head_rates": (1, 2, 3, 4), "model.dropout": 0.0,
        "train.iterations": 1500, "train.batch_size": 32, "train.lr": 1e-3, "train.betas": (0.9, 0.999),
        "train.weight_decay": 1e-4, "train.lr_schedule": "step", "train.lr_step": 0.2, "train.lr_gamma": 0.5,
        "train.eval_batch_size": 64, "train.precision": "auto",  # bf16 where native (`resolve_precision`)
        "train.memory_format": "channels_last", "train.threads": 0,
    },
    # full: the AdapMTL/DiSparse NYU-v2 recipe (adapmtl.md §1.6): real data, DeepLab-ResNet34 with ASPP heads of
    # width 1024, 20k iterations, batch 16, Adam lr 1e-3 halved every 4k
    "full": {
        "data.synthetic": None, "data.dataset": "nyuv2", "data.val_fraction": 0.1, "data.split_seed": 0,
        "data.flip": True,
        "model.backbone": "deeplab_resnet34", "model.width": 16, "model.output_stride": 8, "model.head": "aspp",
        "model.head_width": 1024, "model.head_rates": (6, 12, 18, 24), "model.dropout": 0.5,
        "train.iterations": 20000, "train.batch_size": 16, "train.lr": 1e-3, "train.betas": (0.9, 0.999),
        "train.weight_decay": 1e-4, "train.lr_schedule": "step", "train.lr_step": 0.2, "train.lr_gamma": 0.5,
        "train.eval_batch_size": 16, "train.precision": "bf16",  # bf16 autocast on the GPU, as the papers' AMP
        "train.memory_format": "channels_last", "train.threads": 0,
    },
}


# standard: exactly quick's runs (the same ids: its cache is shared), over every method, level and ablation
PROFILE_SETTINGS["standard"] = PROFILE_SETTINGS["quick"]

# A dataset other than NYU-v2 changes what its data and tasks need on top of a profile (explicit values again).
# Tiny-Taskonomy: generated buildings of square 32x32 views (the release is 512x512; the papers crop 224 of 256), the
# same model and schedule as NYU-v2's quick profile except the dense reference's length, chosen by the same plateau
# criterion (the chapter shows it per seed), and one CPU thread per run: these small runs gain little from a second
# thread, so the local executor trains two side by side (as the multi-domain runs). The full profile reads the real
# release (see data/README.md).
_TASKONOMY = {"data.dataset": "taskonomy", "tasks": ("semseg", "normal", "depth", "keypoints", "edges")}
DATASET_SETTINGS: dict[str, dict[str, dict[str, Any]]] = {
    "nyuv2": {},
    "taskonomy": {
        "smoke": {**_TASKONOMY, "data.synthetic.n_train": 25, "data.synthetic.n_test": 5, "data.synthetic.height": 24,
                  "data.synthetic.width": 24, "train.threads": 1},
        "quick": {**_TASKONOMY, "data.synthetic.n_train": 600, "data.synthetic.n_test": 100, "data.synthetic.height": 32,
                  "data.synthetic.width": 32, "train.iterations": 800, "train.threads": 1},
        "full": {**_TASKONOMY, "data.synthetic": None, "train.iterations": 100000, "train.lr": 1e-4, "train.lr_step": 0.12,
                 "train.lr_gamma": 0.3},  # DiSparse/AdapMTL's Taskonomy recipe (adapmtl.md §1.6)
    },
}
DATASET_SETTINGS["taskonomy"]["standard"] = DATASET_SETTINGS["taskonomy"]["quick"]


def dataset_overrides(dataset: str) -> dict[str, Any]:
    """The override that selects a dataset (none for NYU-v2, so its configs and ids are exactly the profile's)."""
    from .datasets import DATASETS

    if dataset not in DATASETS.names():
        raise ValueError(f"unknown dataset {dataset!r}; valid: {', '.join(DATASETS.names())}")
    return {} if dataset == "nyuv2" else {"data.dataset": dataset}


def _base(profile: str, dataset: str = "nyuv2") -> RunConfig:
    if profile not in PROFILE_SETTINGS:
        raise ValueError(f"unknown profile {profile!r}; valid: {', '.join(PROFILES)}")
    # a dataset without settings here (e.g. registered by a user) runs on the profile's values; `validate` names an
    # unregistered one
    return with_overrides(RunConfig(), {**PROFILE_SETTINGS[profile],
                                        **DATASET_SETTINGS.get(dataset, {}).get(profile, {})})


def native_bf16() -> bool:
    """Whether bf16 autocast is native on this machine: a CUDA device with bf16, or a CPU with AVX512-BF16 or AMX
    instructions. Elsewhere oneDNN emulates bf16 and it is slower than float32 (2.3x on an AVX-512 CPU without them)."""
    if torch.cuda.is_available():
        return torch.cuda.is_bf16_supported()
    return bool(torch.cpu._is_avx512_bf16_supported() or torch.cpu._is_amx_tile_supported())


def resolve_precision(cfg: RunConfig) -> RunConfig:
    """`train.precision = "auto"` becomes `bf16` where it is native (`native_bf16`) and `float32` elsewhere, before
    the config is hashed: the run id names the precision the run computes in, so runs of one machine are never
    reused on another that would compute them differently. An explicit `float32` or `bf16` is kept as is."""
    if cfg.train.precision != "auto":
        return cfg
    return replace(cfg, train=replace(cfg.train, precision="bf16" if native_bf16() else "float32"))


def make_config(profile: str, method: str = "dense", sparsity: float = 0.0, *,
                overrides: dict[str, Any] | None = None, method_params: dict[str, Any] | None = None,
                weighting: str | None = None, weighting_params: dict[str, Any] | None = None,
                sparse_overrides: dict[str, Any] | None = None) -> RunConfig:
    """The config of one run. `overrides` are dotted settings (e.g. {"model.backbone": "mobilenetv2"}) applied to
    the run and to the dense run it starts from, so both share data, architecture and schedule. `weighting=None` is
    the method's own loss weighting (`equal` unless the method names one, e.g. AdapMTL's `adaptive`).
    `sparse_overrides` change the pruned run only (e.g. its weight decay), never the dense reference it starts from."""
    from .validate import validate  # late import: validate needs the registries, which need config

    dataset = (overrides or {}).get("data.dataset", "nyuv2")  # a dataset brings its settings for the profile
    dense = resolve_precision(with_overrides(_base(profile, dataset), overrides or {}))
    if method == "dense":
        if sparse_overrides:
            raise ValueError("sparse_overrides apply to pruned runs only; use overrides for the dense reference")
        cfg = replace(dense, pruning=PruningConfig(method="dense", sparsity=sparsity,
                                                   params=freeze_params(method_params)))
    else:
        # user overrides win over the sparse-phase defaults (and apply to the dense run too)
        sparse = with_overrides(with_overrides(_base(profile, dataset), SPARSE_PHASE[profile]), overrides or {})
        sparse = resolve_precision(with_overrides(sparse, sparse_overrides or {}))
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


def generator_spec(profile: str, dataset: str = "nyuv2") -> RoomsSpec | None:
    return _base(profile, dataset).data.synthetic
