"""Grids of runs from notebook parameters: (config, seed) pairs for the pruning methods, the AdapMTL ablations and
sensitivity grids, checked before anything runs (seeds, sparsities, methods, variants)."""

from __future__ import annotations

from typing import Any, Iterable

from . import catalogue
from .config import RunConfig
from .profiles import BUDGETS, PROFILES, SEEDS, make_config


_SETTING_OF = {"backbone": "model.backbone", "iterations": "train.iterations", "batch_size": "train.batch_size",
               "lr": "train.lr"}


def default_seeds(profile: str, which: str = "all") -> list[int]:
    """The profile's seeds: `main` (every sparsity), `extra` (only at the seed sparsity) or `all`."""
    if profile not in PROFILES:
        raise ValueError(f"unknown profile {profile!r}; valid: {', '.join(PROFILES)}")
    main, extra = SEEDS[profile]
    return {"main": list(main), "extra": list(extra), "all": list(main) + list(extra)}[which]


def check_seeds(seeds: Any) -> list[int]:
    if isinstance(seeds, int) and not isinstance(seeds, bool):
        seeds = [seeds]
    if (not isinstance(seeds, (list, tuple)) or not seeds
            or not all(isinstance(s, int) and not isinstance(s, bool) and s >= 0 for s in seeds)):
        raise ValueError(f"seeds must be a non-empty list of non-negative integers, got {seeds!r}")
    if len(set(seeds)) != len(seeds):
        raise ValueError(f"seeds must not repeat, got {seeds!r}")
    return list(seeds)


def check_sparsities(sparsities: Any) -> list[float]:
    if (not isinstance(sparsities, (list, tuple)) or not sparsities
            or not all(isinstance(s, (int, float)) and 0 < s < 1 for s in sparsities)):
        raise ValueError(f"sparsities must be a non-empty list of numbers in (0, 1), got {sparsities!r}")
    return [float(s) for s in sparsities]


def dense_config(profile: str, **settings: Any) -> RunConfig:
    """The dense reference of `profile`, with notebook-level settings (None = the profile's value)."""
    if profile not in PROFILES:
        raise ValueError(f"unknown profile {profile!r}; valid: {', '.join(PROFILES)}")
    unknown = set(settings) - set(_SETTING_OF)
    if unknown:
        raise ValueError(f"unknown setting(s) {sorted(unknown)}; valid: {sorted(_SETTING_OF)}")
    overrides = {_SETTING_OF[k]: v for k, v in settings.items() if v is not None}
    return make_config(profile, "dense", overrides=overrides)


def pruning_grid(profile: str, methods: Iterable[str] | None, sparsities: Iterable[float], seeds: Iterable[int] | None,
                 extra_seeds: Iterable[int] | None = (), seed_sparsity: float | None = None,
                 method_params: dict[str, dict[str, Any]] | None = None,
                 overrides: dict[str, Any] | None = None) -> list[tuple[RunConfig, int]]:
    """(config, seed) pairs: every method (None: every catalogued baseline) at every sparsity for `seeds`, plus
    `extra_seeds` at `seed_sparsity`. Everything is validated before anything runs."""
    if profile not in PROFILES:
        raise ValueError(f"unknown profile {profile!r}; valid: {', '.join(PROFILES)}")
    if methods is None:
        methods = catalogue.baselines()
    if isinstance(methods, str) or not list(methods):
        raise ValueError(f"methods must be a non-empty list of method keys, got {methods!r}")
    methods = list(methods)
    sparsities = check_sparsities(list(sparsities))
    seeds = check_seeds(list(seeds) if seeds is not None else default_seeds(profile, "main"))
    extra = list(extra_seeds) if extra_seeds is not None else default_seeds(profile, "extra")
    if extra:
        extra = check_seeds(extra)
        if seed_sparsity not in sparsities:
            raise ValueError(f"seed_sparsity {seed_sparsity!r} must be one of sparsities {sparsities}")
    method_params = method_params or {}
    unknown = set(method_params) - set(methods)
    if unknown:
        raise ValueError(f"method_params given for {sorted(unknown)}, which are not in methods {methods}")
    pairs = []
    for method in methods:
        for s in sparsities:
            cfg = make_config(profile, method, s, overrides=overrides, method_params=method_params.get(method))
            run_seeds_here = seeds + [x for x in extra if x not in seeds and s == seed_sparsity]
            pairs += [(cfg, seed) for seed in run_seeds_here]
    return pairs


VARIANT_KEYS = {"method", "params", "weighting", "weighting_params", "sparse_overrides"}


def variant_pairs(profile: str, sparsity: float, seeds: Iterable[int] | None,
                  variants: dict[str, dict[str, Any]],
                  overrides: dict[str, Any] | None = None) -> list[tuple[str, RunConfig, int]]:
    """(label, config, seed) for every named variant, e.g. {"equal weighting": {"method": "adapmtl",
    "weighting": "equal"}}; keys: method (required), params, weighting, weighting_params, sparse_overrides."""
    if not isinstance(variants, dict) or not variants:
        raise ValueError(f"variants must be a non-empty mapping label -> spec, got {variants!r}")
    seeds = check_seeds(list(seeds) if seeds is not None else default_seeds(profile, "main"))
    out = []
    for label, spec in variants.items():
        if not isinstance(spec, dict) or "method" not in spec or set(spec) - VARIANT_KEYS:
            raise ValueError(f"variant {label!r}: expected a mapping with 'method' and optionally "
                             f"{sorted(VARIANT_KEYS - {'method'})}, got {spec!r}")
        cfg = make_config(profile, spec["method"], check_sparsities([sparsity])[0], overrides=overrides,
                          method_params=spec.get("params"), weighting=spec.get("weighting"),
                          weighting_params=spec.get("weighting_params"),
                          sparse_overrides=spec.get("sparse_overrides"))
        out += [(label, cfg, seed) for seed in seeds]
    return out


def sensitivity_pairs(profile: str, sparsity: float, inits: Iterable[float], decays: Iterable[float],
                      seed: int = 0, method: str = "adapmtl") -> list[tuple[str, RunConfig, int]]:
    """The faithful mechanism over threshold init × weight decay (the two knobs the official code must hand-tune)."""
    inits, decays = [float(v) for v in inits], [float(v) for v in decays]
    if not inits or not decays or any(d < 0 for d in decays):
        raise ValueError(f"inits and decays must be non-empty, decays >= 0; got {inits}, {decays}")
    variants = {f"init {i:g}, wd {d:g}": {"method": method, "params": {"mechanism": "faithful", "init": i},
                                          "sparse_overrides": {"train.weight_decay": d}}
                for i in inits for d in decays}
    return variant_pairs(profile, sparsity, [seed], variants)


def ablation_pairs(profile: str, group: str, sparsity: float,
                   seeds: Iterable[int] | None) -> list[tuple[str, RunConfig, int]]:
    """The labelled runs of one AdapMTL ablation group (`ablations.ABLATIONS`), or of all of them with `group="all"`."""
    from . import ablations

    if group == "all":
        variants = {label: spec for g in ablations.ABLATIONS for label, spec in ablations.group(g).items()}
    else:
        variants = ablations.group(group)
    return variant_pairs(profile, sparsity, seeds, variants)


def ablation_group_pairs(profile: str, group: str, sparsity: float, seeds: Iterable[int] | None,
                         inits: Iterable[float] = (), decays: Iterable[float] = ()) -> list[tuple[str, RunConfig, int]]:
    """One ablation chapter's runs: a group of `ablations.ABLATIONS` at `seeds` (None: the profile's main seeds), or
    `sensitivity`, the faithful mechanism's init × weight-decay grid at the first seed."""
    seeds = check_seeds(list(seeds)) if seeds is not None else default_seeds(profile, "main")
    if group == "sensitivity":
        return sensitivity_pairs(profile, sparsity, inits, decays, seeds[0])
    return ablation_pairs(profile, group, sparsity, seeds)


def budget_grid(profile: str, methods: Iterable[str], sparsity: float, budgets: Iterable[int] | None,
                seeds: Iterable[int] | None, overrides: dict[str, Any] | None = None) -> list[tuple[RunConfig, int]]:
    """Every method at every sparse-phase length (`train.iterations` of the pruned run; None: the profile's
    `BUDGETS`) at `seeds`, each with its equal-training control (`dense_finetune` of the same length)."""
    from .evidence import with_controls

    budgets = list(budgets) if budgets is not None else list(BUDGETS[profile])
    if not budgets or not all(isinstance(b, int) and not isinstance(b, bool) and b >= 1 for b in budgets):
        raise ValueError(f"budgets must be a non-empty list of positive integers (iterations), got {budgets!r}")
    seeds = check_seeds(list(seeds) if seeds is not None else default_seeds(profile, "main"))
    pairs = []
    for method in methods:
        for b in budgets:
            cfg = make_config(profile, method, check_sparsities([sparsity])[0], overrides=overrides,
                              sparse_overrides={"train.iterations": b})
            pairs += [(cfg, seed) for seed in seeds]
    return with_controls(pairs)
