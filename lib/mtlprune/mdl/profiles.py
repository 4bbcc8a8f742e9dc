"""The multi-domain profiles (smoke, quick, standard, full: every value an explicit override) and the one place a multi-domain
config is built and validated, before anything pretrains or trains."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from ..config import with_overrides
from ..data.domains import DOMAINS, SOURCE
from ..profiles import PROFILES
from .config import MDLConfig
from .methods import MDL_METHODS
from .sharing import SHARING

BUDGETS = (1.0, 0.75, 0.5, 0.25)

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
    },
    "quick": {
        # 200 validation images per domain: one image is 0.5 % of a domain's accuracy, half the plateau tolerance
        "source.data.synthetic.n_train": 500, "source.data.synthetic.n_val": 200, "source.data.synthetic.n_test": 300,
        "source.data.synthetic.n_source": 3000, "source.data.synthetic.size": 32, "source.data.synthetic.seed": 0,
        "source.data.domains": DOMAINS, "source.data.source": "shapes", "source.data.size": 32,
        "source.data.test_split": "test", "source.model.widths": (12, 24, 48), "source.model.blocks": 1,
        # long enough that the source and the individual networks reach the plateau criterion (`evidence`)
        "source.iterations": 3000, "source.batch_size": 64, "source.lr": 2e-3, "source.seed": 0,
        "source.weight_decay": 1e-4, "source.threads": 2, **_METHOD_DEFAULTS,
        "train.iterations": 800, "train.batch_size": 12, "train.lr": 2e-3, "train.switch_lr": 0.02,
        "train.weight_decay": 1e-4,
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
        "train.weight_decay": 1e-4,
    },
}


# standard: exactly quick's runs (shared ids), over every budget and sharing variant
MDL_PROFILE_SETTINGS["standard"] = MDL_PROFILE_SETTINGS["quick"]


def _profile(profile: str) -> MDLConfig:
    if profile not in MDL_PROFILE_SETTINGS:
        raise ValueError(f"unknown profile {profile!r}; valid: {', '.join(PROFILES)}")
    return with_overrides(MDLConfig(), MDL_PROFILE_SETTINGS[profile])


def make_mdl_config(profile: str, method: str = "budget_aware", budget: float = 0.5, sharing: str | None = None,
                    overrides: dict[str, Any] | None = None) -> MDLConfig:
    """One multi-domain run. `sharing=None`: the method's own (`union` for budget_aware, `none` otherwise).
    `overrides` are dotted settings on the MDLConfig, e.g. {"method.granularity": "slice"}."""
    cls = MDL_METHODS.get(method)
    cfg = _profile(profile)
    sharing = sharing if sharing is not None else cls.default_sharing
    cfg = replace(cfg, method=replace(cfg.method, name=method, budget=float(budget), sharing=sharing))
    cfg = with_overrides(cfg, overrides or {})
    validate(cfg)
    return cfg


def validate(cfg: MDLConfig) -> None:
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
        (isinstance(t.threads, int) and isinstance(cfg.source.threads, int) and t.threads >= 0
         and cfg.source.threads >= 0, "train.threads and source.threads must be integers >= 0 (0: the process's)"),
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

