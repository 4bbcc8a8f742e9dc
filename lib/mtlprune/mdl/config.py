"""Frozen configurations of the multi-domain runs, their ids (`mdl-<method>-<hash>`, the hash over the canonical config
with defaults omitted, as for the multi-task runs) and the three profiles.

A method run *contains* the source (pretraining) run it starts from, so the dependency is part of its identity.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any

from ..config import config_hash, with_overrides
from ..data.domains import DOMAINS, SOURCE, DomainsSpec

PROFILES = ("smoke", "quick", "full")
BUDGETS = (1.0, 0.75, 0.5, 0.25)


@dataclass(frozen=True)
class MDLData:
    """`synthetic=None` means the Visual Decathlon release on disk (`MTLPRUNE_DECATHLON`)."""

    synthetic: DomainsSpec | None = DomainsSpec()
    domains: tuple[str, ...] = DOMAINS
    source: str = "shapes"  # the domain whose `source` split pretrains the backbone (ImageNet's role)
    size: int = 32
    test_split: str = "test"  # the real release withholds test labels: use "val" there


@dataclass(frozen=True)
class MDLModel:
    widths: tuple[int, ...] = (12, 24, 48)
    blocks: int = 1  # basic blocks per stage (ResNet-26: 4)


@dataclass(frozen=True)
class SourceConfig:
    """Pretraining on the source domain: the shared backbone every method starts from. Trained once, at `seed`, and
    shared by every seed of the multi-domain runs, as one set of ImageNet weights is in the papers."""

    data: MDLData = field(default_factory=MDLData)
    model: MDLModel = field(default_factory=MDLModel)
    iterations: int = 400
    batch_size: int = 64
    lr: float = 2e-3
    seed: int = 0
    weight_decay: float = 1e-4

    @property
    def run_id(self) -> str:
        return f"mdlsource-{config_hash(self)}"


@dataclass(frozen=True)
class MethodConfig:
    """The multi-domain method (registry in `mdl.methods`) and its budget / sharing choices."""

    name: str = "budget_aware"
    budget: float = 0.5  # fraction of the switchable weights each domain may use
    sharing: str = "union"  # none | union | intersection | jaccard
    sharing_weight: float = 1.0  # the initial weight of the sharing term
    learnable_weight: bool = False  # the weight ascends on the sharing term (a Lagrange-style multiplier)
    granularity: str = "filter"  # filter | slice (BA²'s (filter, input channel) switches)
    budget_weight: float = 0.0  # weight of a per-domain budget hinge on top of the exact projection (BA²'s soft form)
    train_backbone: bool = True  # switch methods: train the shared convolutions jointly (false: BA²'s frozen backbone)
    switch_init: float = 0.5
    dual_lr: float = 0.05  # ascent step of a learnable sharing weight


@dataclass(frozen=True)
class MDLTrain:
    iterations: int = 50
    batch_size: int = 12  # per domain and step (every step sees every domain)
    lr: float = 2e-3  # BatchNorms, heads (and the backbone when a method trains it)
    switch_lr: float = 0.02
    weight_decay: float = 1e-4


@dataclass(frozen=True)
class MDLConfig:
    source: SourceConfig = field(default_factory=SourceConfig)
    method: MethodConfig = field(default_factory=MethodConfig)
    train: MDLTrain = field(default_factory=MDLTrain)

    @property
    def kind(self) -> str:
        return f"mdl-{self.method.name}"

    @property
    def run_id(self) -> str:
        return f"{self.kind}-{config_hash(self)}"


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
        "source.weight_decay": 1e-4, **_METHOD_DEFAULTS,
        "train.iterations": 30, "train.batch_size": 16, "train.lr": 2e-3, "train.switch_lr": 0.05,
        "train.weight_decay": 1e-4,
    },
    "quick": {
        "source.data.synthetic.n_train": 500, "source.data.synthetic.n_val": 100, "source.data.synthetic.n_test": 300,
        "source.data.synthetic.n_source": 3000, "source.data.synthetic.size": 32, "source.data.synthetic.seed": 0,
        "source.data.domains": DOMAINS, "source.data.source": "shapes", "source.data.size": 32,
        "source.data.test_split": "test", "source.model.widths": (12, 24, 48), "source.model.blocks": 1,
        "source.iterations": 400, "source.batch_size": 64, "source.lr": 2e-3, "source.seed": 0,
        "source.weight_decay": 1e-4, **_METHOD_DEFAULTS,
        "train.iterations": 50, "train.batch_size": 12, "train.lr": 2e-3, "train.switch_lr": 0.02,
        "train.weight_decay": 1e-4,
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
        "train.weight_decay": 1e-4,
    },
}


def _profile(profile: str) -> MDLConfig:
    if profile not in MDL_PROFILE_SETTINGS:
        raise ValueError(f"unknown profile {profile!r}; valid: {', '.join(PROFILES)}")
    return with_overrides(MDLConfig(), MDL_PROFILE_SETTINGS[profile])


def make_mdl_config(profile: str, method: str = "budget_aware", budget: float = 0.5, sharing: str | None = None,
                    overrides: dict[str, Any] | None = None) -> MDLConfig:
    """One multi-domain run. `sharing=None`: the method's own (`union` for budget_aware, `none` otherwise).
    `overrides` are dotted settings on the MDLConfig, e.g. {"method.granularity": "slice"}."""
    from .methods import MDL_METHODS  # late: the registry imports this module

    cls = MDL_METHODS.get(method)
    cfg = _profile(profile)
    sharing = sharing if sharing is not None else cls.default_sharing
    cfg = replace(cfg, method=replace(cfg.method, name=method, budget=float(budget), sharing=sharing))
    cfg = with_overrides(cfg, overrides or {})
    validate(cfg)
    return cfg


def validate(cfg: MDLConfig) -> None:
    from .methods import MDL_METHODS
    from .sharing import SHARING

    cls = MDL_METHODS.get(cfg.method.name)
    SHARING.get(cfg.method.sharing)
    m, t = cfg.method, cfg.train
    checks = [
        (0 < m.budget <= 1, f"budget must be in (0, 1], got {m.budget}"),
        (m.granularity in ("filter", "slice"), f"granularity {m.granularity!r} unknown; valid: filter, slice"),
        (cls.uses_switches or m.sharing == "none",
         f"method {m.name!r} has no switches, so no sharing term: use sharing 'none' (got {m.sharing!r})"),
        (m.sharing_weight >= 0 and m.dual_lr >= 0 and m.budget_weight >= 0,
         "sharing_weight, budget_weight and dual_lr must be >= 0"),
        (t.iterations >= 1 and t.batch_size >= 1 and t.lr > 0 and t.switch_lr > 0,
         "train.iterations and train.batch_size must be >= 1, train.lr and train.switch_lr > 0"),
        (cfg.source.iterations >= 1 and cfg.source.batch_size >= 1, "source.iterations/batch_size must be >= 1"),
        (len(cfg.source.data.domains) >= 2, "a multi-domain run needs at least two domains"),
        (cfg.source.data.synthetic is None or not set(cfg.source.data.domains) - set(DOMAINS),
         f"source.data.domains {list(cfg.source.data.domains)}: unknown domain(s) "
         f"{sorted(set(cfg.source.data.domains) - set(DOMAINS))} for the generated benchmark; valid: {', '.join(DOMAINS)}"),
        (len(set(cfg.source.data.domains)) == len(cfg.source.data.domains),
         f"source.data.domains must not repeat, got {list(cfg.source.data.domains)}"),
        (cfg.source.data.synthetic is None or cfg.source.data.source == SOURCE,
         f"source.data.source {cfg.source.data.source!r}: the generated benchmark pretrains on {SOURCE!r} only"),
        (cfg.source.data.source in cfg.source.data.domains,
         f"source {cfg.source.data.source!r} must be one of the domains {cfg.source.data.domains}"),
    ]
    for ok, message in checks:
        if not ok:
            raise ValueError(message)

