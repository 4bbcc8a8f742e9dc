"""Profiles: smoke (tests and CI, seconds), quick (CPU study on 2 cores, sized so that its results can converge),
standard (quick's runs over every method, level and ablation) and full (paper scale: real NYU-v2, DeepLab-ResNet34 +
ASPP heads at width 1024, 20k iterations, batch 16, GPU; the real Visual Decathlon) — for the multi-task and the multi-domain
runs alike. The one place a config of either kind is built (`make_config`, `make_mdl_config`) and the one check of a
profile name (`check_profile`).

A profile is only a way to build configs; the config values, not the profile name, define a run.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import torch

from ..core.config import MDLConfig, PruningConfig, RunConfig, freeze_params, with_overrides
from ..core.data.datasets import DATASETS
from ..core.data.domains import DOMAINS
from ..core.data.packaged import PACKAGED_DOMAINS, PACKAGED_SOURCE
from ..core.data.nyuv2 import RoomsSpec
from ..core.mdl.methods import MDL_METHODS
from ..core.pruning import STRATEGIES
from ..core.validate import validate

PROFILES = ("smoke", "quick", "standard", "full")


def check_profile(profile: str) -> str:
    """`profile`, or one error naming the valid ones."""
    if profile not in PROFILES:
        raise ValueError(f"unknown profile {profile!r}; valid: {', '.join(PROFILES)}")
    return profile

# The sparse phase: how a pruned run trains after (or while) it is pruned, the same for every method of a profile.
# Its length B is chosen by measurement (the budget chapter, `stats.convergence` / `stats.choose_budget`): the
# smallest length in `BUDGETS` at which doubling it moves no compared method's (nor the control's) mean Δ_T by more
# than its 95 % interval or 3 points. The chapter recomputes it from the runs, and the Findings page calls no
# multi-task verdict where the profile's B fails it ("undetermined at this budget").
# quick/standard: B = 800 iterations at the dense batch of 32 (21 epochs, about a quarter of the dense reference's
# samples) with a cosine schedule from the dense learning rate. Chosen on the validation split with
# benchmarks/convergence_probe.py (AdapMTL and global magnitude, 3 seeds): batch 32 reached at 800 iterations what
# batch 16 reached at 1,600, and the values at 100 iterations (the earlier B, 1.5 epochs) were 30-50 points from where
# they settle. Measured in the quick study (3 seeds): doubling 800 -> 1,600 moves AdapMTL by -0.4 and the control by
# +1.3 points with ASPP rates 1-4 and a 6,000-iteration dense reference, by +3.7 (± 5.3) and +1.2 with rates 1-2 and
# 3,000 (AdapMTL then just over the 3-point bar), but the paper's baselines by +5 to +31: the methods that train from
# scratch or rewind (SNIP, DiSparse, LTH) and IMP's four rounds need a sparse phase near the dense reference's length,
# as the papers give them (20k = the dense schedule), which the quick study cannot hold; its verdict on them stays
# undetermined and standard must run longer phases.
# full: the paper's schedule, 20k iterations of batch 16 for every method. Methods that may start from the dense
# reference do (a deviation for the from-scratch ones, which get the same budget).
SPARSE_PHASE = {
    "smoke": {"train.iterations": 4},
    "quick": {"train.iterations": 800, "train.batch_size": 32, "train.lr_schedule": "cosine"},
    "full": {},
}
SPARSE_PHASE["standard"] = SPARSE_PHASE["quick"]  # standard = quick's runs, every method, level and ablation

# Loss-weighting parameters a profile sets unless the caller gives its own: AdapMTL's window is 2.5% of the run in the
# code (500 of 20k); quick averages over 10 % (80 of its 800 sparse-phase steps; set when that phase was 100 steps,
# where 2.5 % would have been 2-3 noisy steps, and kept so that the budget measurements stay comparable). DWA needs two
# full periods before it moves; quick uses a period of 8 (set for the 100-step phase; 50 would act too now).
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
    # quick: the CPU study, sized so that its results can converge on 2 cores: a ResNet of width 8 with ASPP heads
    # of width 16 on 24x32 scenes (the earlier 16/32 at 48x64 cost 4.6x more per step in float32, 113.8 vs 25.0 ms,
    # and its dense reference still moved by +9 to +13 Δ_T points when its 1,500 iterations doubled). The heads'
    # dilation rates are 1 and 2: on the 3x4 feature maps of output stride 8 the papers' rates (a sixth to two thirds
    # of the map's height) are 1-2, and rates 3 and 4 read mostly padding; dropping them costs 18 % less per step
    # (21.7-23.0 vs 27.6 ms on one thread of an AVX2 EPYC, `benchmarks/step_profile.py`). The dense reference trains
    # 3,000 iterations (80 epochs; doubled, it moved +1.3 ± 11.6 in the quick study; 6,000 cost 160 epochs and moved
    # +4.8 ± 12.3 when doubled, on the earlier heads); the dense chapter and the Findings test that doubling it moves no mean Δ_T beyond its
    # interval or 3 points. With the multi-domain layout (channels_last) these cuts took the study from an estimated
    # 55.5 min to 36.4 measured on two AVX2 cores (issue: main job). float32 everywhere: at this size bf16 autocast
    # saves ~13 % per step where native (21.7 vs 25.0 ms on one thread of an AVX512-BF16 EPYC, measured alone), and
    # one precision makes the runs (and their ids) the same on every CPU.
    "quick": {
        "data.synthetic.n_train": 1200, "data.synthetic.n_test": 300, "data.synthetic.height": 24,
        "data.synthetic.width": 32, "data.synthetic.seed": 0,
        "data.dataset": "nyuv2", "data.val_fraction": 0.1, "data.split_seed": 0,
        "data.flip": True,
        "model.backbone": "resnet_small", "model.width": 8, "model.output_stride": 8, "model.head": "aspp",
        "model.head_width": 16, "model.head_rates": (1, 2), "model.dropout": 0.0,
        "train.iterations": 3000, "train.batch_size": 32, "train.lr": 1e-3, "train.betas": (0.9, 0.999),
        "train.weight_decay": 1e-4, "train.lr_schedule": "step", "train.lr_step": 0.2, "train.lr_gamma": 0.5,
        "train.eval_batch_size": 64, "train.precision": "float32",
        # one CPU thread per run, packed two side by side by the local executor: a busy neighbour then slows the study
        # by the core it takes, not 2-7x (two OpenMP threads wait on each other at every barrier when one is
        # descheduled); measured by benchmarks/neighbour.py (throughput alone 1.01-1.18x, with a neighbour 1.68-1.97x
        # that of one two-thread run at a time; the neighbour's slowdown 1.43-1.48x instead of 2.38-2.45x)
        "train.memory_format": "channels_last", "train.threads": 1,
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
# same model, schedule and dense length as NYU-v2's quick profile (read by the standard profile only; its doubling
# test, the standard Findings', has not run at this model size yet), and one CPU thread per run. The full profile reads
# the real release (see data/README.md).
_TASKONOMY = {"data.dataset": "taskonomy", "tasks": ("semseg", "normal", "depth", "keypoints", "edges")}
DATASET_SETTINGS: dict[str, dict[str, dict[str, Any]]] = {
    "nyuv2": {},
    "taskonomy": {
        "smoke": {**_TASKONOMY, "data.synthetic.n_train": 25, "data.synthetic.n_test": 5, "data.synthetic.height": 24,
                  "data.synthetic.width": 24, "train.threads": 1},
        "quick": {**_TASKONOMY, "data.synthetic.n_train": 600, "data.synthetic.n_test": 100, "data.synthetic.height": 32,
                  "data.synthetic.width": 32, "train.threads": 1},
        "full": {**_TASKONOMY, "data.synthetic": None, "train.iterations": 100000, "train.lr": 1e-4, "train.lr_step": 0.12,
                 "train.lr_gamma": 0.3},  # DiSparse/AdapMTL's Taskonomy recipe (adapmtl.md §1.6)
    },
}
DATASET_SETTINGS["taskonomy"]["standard"] = DATASET_SETTINGS["taskonomy"]["quick"]


def dataset_overrides(dataset: str) -> dict[str, Any]:
    """The override that selects a dataset (none for NYU-v2, so its configs and ids are exactly the profile's)."""
    if dataset not in DATASETS.names():
        raise ValueError(f"unknown dataset {dataset!r}; valid: {', '.join(DATASETS.names())}")
    return {} if dataset == "nyuv2" else {"data.dataset": dataset}


def _base(profile: str, dataset: str = "nyuv2") -> RunConfig:
    check_profile(profile)
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
    if method != "dense" and method in STRATEGIES.names():
        weighting = weighting or getattr(STRATEGIES.get(method), "default_weighting", None)
    if weighting is not None:
        wparams = weighting_params if weighting_params is not None else WEIGHTING_DEFAULTS[profile].get(weighting, {})
        cfg = replace(cfg, weighting=replace(cfg.weighting, name=weighting, params=freeze_params(wparams)))
    validate(cfg)
    return cfg


def generator_spec(profile: str, dataset: str = "nyuv2") -> RoomsSpec | None:
    return _base(profile, dataset).data.synthetic


# ---------------------------------------------------------------------------------------------------------------------
# Multi-domain runs
# ---------------------------------------------------------------------------------------------------------------------
_METHOD_DEFAULTS = {"method.sharing_weight": 1.0, "method.learnable_weight": False, "method.granularity": "filter",
                    "method.budget_weight": 0.0, "method.train_backbone": True, "method.switch_init": 0.5,
                    "method.dual_lr": 0.05}

# Every value a profile relies on is an explicit override, never a dataclass default (see `profiles`).
MDL_PROFILE_SETTINGS: dict[str, dict[str, Any]] = {
    "smoke": {
        "source.data.synthetic.n_train": 60, "source.data.synthetic.n_val": 20, "source.data.synthetic.n_test": 40,
        "source.data.synthetic.n_source": 200, "source.data.synthetic.size": 16, "source.data.synthetic.seed": 0,
        "source.data.domains": DOMAINS, "source.data.source": "shapes", "source.data.size": 16,
        "source.data.test_split": "test", "source.model.widths": (8, 16, 16), "source.model.blocks": 1,
        "source.iterations": 30, "source.batch_size": 32, "source.lr": 2e-3, "source.seed": 0,
        "source.weight_decay": 1e-4, "source.threads": 1, **_METHOD_DEFAULTS,
        "train.iterations": 30, "train.batch_size": 16, "train.lr": 2e-3, "train.switch_lr": 0.05,
        "train.weight_decay": 1e-4, "train.threads": 1,
        "source.memory_format": "channels_last", "train.memory_format": "channels_last",
    },
    "quick": {
        # the real benchmark converted from installed packages (`data.packaged`: Fashion-MNIST, MNIST, digits, solar
        # cells, faces, textures; the splits and counts in data/README.md), pretrained on Fashion-MNIST's source split
        "source.data.synthetic": None,
        "source.data.packaged": {"domains": PACKAGED_DOMAINS, "size": 32, "max_train": 5000, "max_val": 1000,
                                 "max_test": 2000, "n_source": 20000, "seed": 0, "version": 1},
        "source.data.domains": PACKAGED_DOMAINS, "source.data.source": PACKAGED_SOURCE, "source.data.size": 32,
        "source.data.test_split": "test", "source.model.widths": (12, 24, 48), "source.model.blocks": 1,
        # long enough that the source and the individual networks reach the plateau criterion (`evidence`)
        "source.iterations": 3000, "source.batch_size": 64, "source.lr": 2e-3, "source.seed": 0,
        # one thread, as every quick run: it then trains beside the dense references instead of alone on both cores
        "source.weight_decay": 1e-4, "source.threads": 1, **_METHOD_DEFAULTS,
        "train.iterations": 800, "train.batch_size": 12, "train.lr": 2e-3, "train.switch_lr": 0.02,
        "train.weight_decay": 1e-4,
        # channels_last images: 12 % less per step on one thread of an AVX2 EPYC (107 vs 122 ms per six-domain step)
        "source.memory_format": "channels_last", "train.memory_format": "channels_last",
        # one thread per run: these small networks use a second core poorly (1.4x for 2 threads, measured), so the
        # local executor runs two of them side by side instead
        "train.threads": 1,
    },
    # Decathlon-scale: the real release at 64 px, ResNet-26 (Rebuffi et al. 2017), longer schedules (a GPU job)
    "full": {
        "source.data.synthetic": None,
        "source.data.domains": ("imagenet12", "aircraft", "cifar100", "daimlerpedcls", "dtd", "gtsrb", "omniglot",
                                "svhn", "ucf101", "vgg-flowers"),
        "source.data.source": "imagenet12", "source.data.size": 64, "source.data.test_split": "val",
        "source.model.widths": (64, 128, 256), "source.model.blocks": 4, "source.iterations": 60000,
        "source.batch_size": 128, "source.lr": 1e-3, "source.seed": 0, "source.weight_decay": 1e-4,
        **_METHOD_DEFAULTS,
        "train.iterations": 20000, "train.batch_size": 32, "train.lr": 2e-3, "train.switch_lr": 0.001,
        "train.weight_decay": 1e-4, "source.memory_format": "channels_last", "train.memory_format": "channels_last",
    },
}


# standard: exactly quick's runs (shared ids), over every budget and sharing variant
MDL_PROFILE_SETTINGS["standard"] = MDL_PROFILE_SETTINGS["quick"]


def _mdl_base(profile: str) -> MDLConfig:
    check_profile(profile)
    return with_overrides(MDLConfig(), MDL_PROFILE_SETTINGS[profile])


def make_mdl_config(profile: str, method: str = "budget_aware", budget: float = 0.5, sharing: str | None = None,
                    overrides: dict[str, Any] | None = None) -> MDLConfig:
    """One multi-domain run. `sharing=None`: the method's own (`union` for budget_aware, `none` otherwise).
    `overrides` are dotted settings on the MDLConfig, e.g. {"method.granularity": "slice"}."""
    cls = MDL_METHODS.get(method)
    cfg = _mdl_base(profile)
    sharing = sharing if sharing is not None else cls.default_sharing
    cfg = replace(cfg, method=replace(cfg.method, name=method, budget=float(budget), sharing=sharing))
    cfg = with_overrides(cfg, overrides or {})
    validate(cfg)
    return cfg
