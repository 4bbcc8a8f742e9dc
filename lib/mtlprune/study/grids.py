"""The grids of runs each chapter and the Findings need: (config, seed) pairs, or (label, config, seed) for labelled
variants, built from the study's design (`design`) and the profiles (`profiles`), every argument checked before
anything runs: the dense references, the sparse-phase budget grid, the core comparison at the profile's budget (each
pruned run with its equal-training control), the runs that test the causes behind AdapMTL's result (hard masks at its
allocation, static task weights tuned on validation, other threshold granularities), the per-method and ablation
grids, and the multi-domain grid. Running them is `runs.grid.run_pairs`, loading them `evidence.records`.
"""

from __future__ import annotations

from typing import Any, Iterable

from ..core import catalogue
from ..core.config import MDLConfig, RunConfig, with_overrides
from ..core.identity import run_id
from ..core.validate import validate
from ..core.metrics import delta_t
from ..runs.kinds import is_complete, summary
from .design import (ABLATIONS, BUDGET_METHODS, BUDGETS, CAUSES, FINDINGS_CLAIMS, HARD_MASK, MDL_BUDGETS, PAPER_KEYS,
                     SEED_SPARSITY, SEEDS, TUNED)
from .evidence import with_controls
from .profiles import check_profile, dataset_overrides, make_config, make_mdl_config

_SETTING_OF = {"backbone": "model.backbone", "iterations": "train.iterations", "batch_size": "train.batch_size",
               "lr": "train.lr"}


def default_seeds(profile: str, which: str = "all") -> list[int]:
    """The profile's seeds: `main` (every sparsity), `extra` (only at the seed sparsity) or `all`."""
    main, extra = SEEDS[check_profile(profile)]
    return {"main": list(main), "extra": list(extra), "all": list(main) + list(extra)}[which]


def check_seeds(seeds: Any) -> list[int]:
    if isinstance(seeds, int) and not isinstance(seeds, bool):
        seeds = [seeds]
    if (not isinstance(seeds, (list, tuple)) or not seeds
            or not all(isinstance(s, int) and not isinstance(s, bool) and 0 <= s < 2 ** 31 for s in seeds)):
        raise ValueError(f"seeds must be a non-empty list of non-negative integers (below 2^31), got {seeds!r}")
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
    check_profile(profile)
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
    """The labelled runs of one AdapMTL ablation group (`design.ABLATIONS`), or of all of them with `group="all"`."""
    if group == "all":
        variants = {label: spec for g in ABLATIONS.values() for label, spec in g.items()}
    elif group in ABLATIONS:
        variants = ABLATIONS[group]
    else:
        raise ValueError(f"unknown ablation group {group!r}; valid: {', '.join(ABLATIONS)}")
    return variant_pairs(profile, sparsity, seeds, variants)


def ablation_group_pairs(profile: str, group: str, sparsity: float, seeds: Iterable[int] | None,
                         inits: Iterable[float] = (), decays: Iterable[float] = ()) -> list[tuple[str, RunConfig, int]]:
    """One ablation chapter's runs: a group of `design.ABLATIONS` at `seeds` (None: the profile's main seeds), or
    `sensitivity`, the faithful mechanism's init × weight-decay grid at the first seed."""
    seeds = check_seeds(list(seeds)) if seeds is not None else default_seeds(profile, "main")
    if group == "sensitivity":
        return sensitivity_pairs(profile, sparsity, inits, decays, seeds[0])
    return ablation_pairs(profile, group, sparsity, seeds)


def budget_grid(profile: str, methods: Iterable[str], sparsity: float, budgets: Iterable[int] | None,
                seeds: Iterable[int] | None, overrides: dict[str, Any] | None = None) -> list[tuple[RunConfig, int]]:
    """Every method at every sparse-phase length (`train.iterations` of the pruned run; None: the profile's
    `BUDGETS`) at `seeds`, each with its equal-training control (`dense_finetune` of the same length)."""
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


def _seeds(profile: str, seeds: Iterable[int] | None) -> list[int]:
    return check_seeds(list(seeds)) if seeds is not None else default_seeds(profile, "main")


def dense_pairs(profile: str, seeds: Iterable[int] | None = None,
                dataset: str = "nyuv2") -> list[tuple[RunConfig, int]]:
    cfg = make_config(profile, "dense", overrides=dataset_overrides(dataset))
    return [(cfg, s) for s in _seeds(profile, seeds)]


def dense_doubling_pairs(cfg: RunConfig, seeds: Iterable[int]) -> list[tuple[RunConfig, int]]:
    """A dense reference at its length L and at 2L (the whole schedule stretched: its learning-rate steps are
    fractions of the run), every seed: the dense reference's doubling test (`evidence.dense_doubling_records`)."""
    if cfg.dense is not None:
        raise ValueError(f"{run_id(cfg)} is a pruned run; the doubling test is of a dense reference")
    double = with_overrides(cfg, {"train.iterations": 2 * cfg.train.iterations})
    validate(double)
    seeds = check_seeds(list(seeds))
    return [(c, s) for c in (cfg, double) for s in seeds]


def reference_doubling_pairs(profile: str, seeds: Iterable[int] | None = None,
                             dataset: str = "nyuv2") -> list[tuple[RunConfig, int]]:
    """The profile's dense reference on `dataset` at L and 2L, every seed (`dense_doubling_pairs`)."""
    return dense_doubling_pairs(make_config(profile, "dense", overrides=dataset_overrides(dataset)),
                                _seeds(profile, seeds))


def budget_pairs(profile: str, methods: Iterable[str] | None = None, budgets: Iterable[int] | None = None,
                 seeds: Iterable[int] | None = None, sparsity: float = SEED_SPARSITY,
                 dataset: str = "nyuv2") -> list[tuple[RunConfig, int]]:
    """The budget chapter's grid: `methods` (None: the profile's `BUDGET_METHODS`) at every budget, with controls."""
    return budget_grid(profile, list(methods) if methods is not None else list(BUDGET_METHODS[profile]), sparsity,
                       budgets, _seeds(profile, seeds), dataset_overrides(dataset))


def doubling_budgets(profile: str) -> list[int]:
    """The profile's sparse-phase length B and 2B: the check that B is long enough on a further dataset (the ranking
    at B must not move when it doubles), without the whole budget grid of the NYU-v2 chapter."""
    b = make_config(profile, "adapmtl", SEED_SPARSITY).train.iterations
    return [b, 2 * b]


def comparison_pairs(profile: str, methods: Iterable[str] | None = None, seeds: Iterable[int] | None = None,
                     sparsity: float = SEED_SPARSITY, dataset: str = "nyuv2") -> list[tuple[RunConfig, int]]:
    """The core methods (None: the profile's `BUDGET_METHODS`, those whose sparse phase the profile measures) at
    `sparsity` and the profile's budget, each with its control, on `dataset` (a registered multi-task dataset)."""
    methods = list(methods) if methods is not None else list(BUDGET_METHODS[check_profile(profile)])
    return with_controls(pruning_grid(profile, methods, [sparsity], _seeds(profile, seeds), extra_seeds=[],
                                      overrides=dataset_overrides(dataset)))


def cause_pairs(profile: str, seeds: Iterable[int] | None = None, sparsity: float = SEED_SPARSITY,
                dataset: str = "nyuv2") -> list[tuple[str, RunConfig, int]]:
    """AdapMTL and the variants that each remove one of its ingredients (adaptive weighting, per-component thresholds)."""
    return variant_pairs(profile, sparsity, _seeds(profile, seeds), CAUSES, dataset_overrides(dataset))


def paper_pairs(profile: str, seeds: Iterable[int] | None = None,
                sparsity: float = SEED_SPARSITY) -> list[tuple[str, RunConfig, int]]:
    """The runs behind the rows of the paper's main table that we reproduce: its baselines and AdapMTL from the
    comparison, and AdapMTL "w/o adaptive thresholds" as our one-global-threshold variant (the cause's config)."""
    keys = set(PAPER_KEYS.values())
    rows = [(catalogue.label(c.pruning.method), c, s) for c, s in comparison_pairs(profile, None, seeds, sparsity)
            if c.pruning.method in keys]
    glob = "AdapMTL, one global threshold"
    return rows + variant_pairs(profile, sparsity, _seeds(profile, seeds), {glob: CAUSES[glob]})


def hard_mask_pairs(profile: str, seeds: Iterable[int] | None = None, sparsity: float = SEED_SPARSITY,
                    dataset: str = "nyuv2") -> list[tuple[str, RunConfig, int]]:
    """The hard-mask control: magnitude masks at AdapMTL's learned per-component sparsity (mean over `seeds` of its
    completed runs, rounded to 1e-4), with the same sparse phase. Needs those AdapMTL runs to be complete."""
    seeds = _seeds(profile, seeds)
    ours = make_config(profile, "adapmtl", sparsity, overrides=dataset_overrides(dataset))
    missing = [s for s in seeds if not is_complete(ours, s)]
    if missing:
        raise ValueError(f"the hard-mask control needs AdapMTL's runs at seeds {missing} first ({run_id(ours)}); "
                         f"run cause_pairs / comparison_pairs before it")
    comps: dict[str, list[float]] = {}
    for s in seeds:
        for c, v in summary(ours, s)["sparsity"]["components"].items():
            comps.setdefault(c, []).append(v)
    allocation = {c: round(sum(v) / len(v), 4) for c, v in comps.items()}
    cfg = make_config(profile, "magnitude_component", sparsity, method_params=allocation,
                      overrides=dataset_overrides(dataset))
    return [(HARD_MASK, cfg, s) for s in seeds]


def weighting_candidates(profile: str, seeds: Iterable[int] | None = None, sparsity: float = SEED_SPARSITY,
                         dataset: str = "nyuv2") -> list[tuple[str, RunConfig, int]]:
    """AdapMTL with static task weights: equal, and each task emphasised (twice the others' weight, normalised), the
    grid `tuned_weighting` chooses from on the validation split."""
    base = make_config(profile, "adapmtl", sparsity, overrides=dataset_overrides(dataset))
    variants = {"static: equal": {"method": "adapmtl", "weighting": "equal"}}
    for task in base.tasks:
        variants[f"static: {task} ×2"] = {"method": "adapmtl", "weighting": "static",
                                           "weighting_params": {"emphasis": task}}
    return variant_pairs(profile, sparsity, _seeds(profile, seeds), variants, dataset_overrides(dataset))


def validation_score(cfg: RunConfig, seed: int) -> float:
    """Δ_T of a completed pruned run's validation metrics against its dense reference's (never the test split)."""
    run = summary(cfg, seed)
    dense = summary(cfg.dense, seed)
    return delta_t(run["val_metrics"], dense["val_metrics"])["mean"]


def tuned_weighting(candidates: list[tuple[str, RunConfig, int]]) -> tuple[str, list[tuple[str, RunConfig, int]]]:
    """The candidate with the best mean validation Δ_T over its seeds (`weighting_candidates`, completed), relabelled
    `TUNED`: (the chosen candidate's label, its labelled pairs)."""
    missing = [(label, s) for label, c, s in candidates if not is_complete(c, s)]
    if missing:
        raise ValueError(f"tuning the static weights needs every candidate run first; missing {missing[:3]}")
    scores: dict[str, list[float]] = {}
    for label, cfg, seed in candidates:
        scores.setdefault(label, []).append(validation_score(cfg, seed))
    best = max(scores, key=lambda k: sum(scores[k]) / len(scores[k]))
    return best, [(TUNED, c, s) for label, c, s in candidates if label == best]


def findings_grids(profile: str, seeds: Iterable[int] | None = None, sparsity: float = SEED_SPARSITY,
                   mdl_budget: float = 0.5, second_dataset: str = "taskonomy") -> dict[str, list[Any]]:
    """Every grid the Findings page reads, by name, for the claims the profile reads (`FINDINGS_CLAIMS`; the grids of
    the others are empty): the dense reference's doubling test, the comparison and the budget grid at B and 2B (each
    on NYU-v2 and `second_dataset`), AdapMTL's cause variants and static-weight candidates, and the multi-domain runs
    at `mdl_budget`. The Findings notebook and its plan both build their runs here."""
    claims = FINDINGS_CLAIMS[check_profile(profile)]
    lengths = doubling_budgets(profile)
    nyu = "baselines" in claims or "backbone" in claims or "weighting" in claims
    second = "second" in claims
    return {
        "dense_doubling": reference_doubling_pairs(profile, seeds) if nyu else [],
        "comparison": comparison_pairs(profile, seeds=seeds, sparsity=sparsity) if nyu else [],
        "budget": budget_pairs(profile, None, lengths, seeds, sparsity) if nyu else [],
        "causes": cause_pairs(profile, seeds, sparsity) if "weighting" in claims else [],
        "candidates": weighting_candidates(profile, seeds, sparsity) if "weighting" in claims else [],
        "second_doubling": reference_doubling_pairs(profile, seeds, second_dataset) if second else [],
        "second": comparison_pairs(profile, seeds=seeds, sparsity=sparsity, dataset=second_dataset) if second else [],
        "second_budget": budget_pairs(profile, None, lengths, seeds, sparsity, second_dataset) if second else [],
        "mdl": mdl_pairs(profile, seeds, budgets=[mdl_budget]) if "mdl" in claims else [],
    }


def mdl_pairs(profile: str, seeds: Iterable[int] | None = None, budgets: Iterable[float] | None = None,
              sharings: Iterable[str] = ("union",)) -> list[tuple[MDLConfig, int]]:
    """The multi-domain grid of the Findings: the budget-free baselines, BA² and the budget-aware method at `budgets`
    (None: the profile's `MDL_BUDGETS`), every seed."""
    return mdl_grid(profile, list(budgets) if budgets is not None else list(MDL_BUDGETS[profile]), list(sharings),
                    _seeds(profile, seeds), [], 0.5)


def mdl_grid(profile: str, budgets: Iterable[float], sharings: Iterable[str], seeds: list[int] | None = None,
         extra_seeds: list[int] | None = None, seed_budget: float = 0.5,
         overrides: dict[str, Any] | None = None) -> list[tuple[MDLConfig, int]]:
    """The multi-domain chapter's runs: the two budget-free baselines at every seed, BA² and ours (each sharing variant) at every
    budget for `seeds`, plus `extra_seeds` at `seed_budget`. Everything is validated before anything runs."""
    budgets = [float(b) for b in budgets]
    if not budgets or any(not 0 < b <= 1 for b in budgets):
        raise ValueError(f"budgets must be a non-empty list of numbers in (0, 1], got {budgets!r}")
    seeds = check_seeds(list(seeds) if seeds is not None else default_seeds(profile, "main"))
    extra = list(extra_seeds) if extra_seeds is not None else default_seeds(profile, "extra")
    extra = [s for s in check_seeds(extra) if s not in seeds] if extra else []
    if extra and seed_budget not in budgets:
        raise ValueError(f"seed_budget {seed_budget} must be one of budgets {budgets}")
    out = []
    for method in ("individual", "frozen"):
        cfg = make_mdl_config(profile, method, 1.0, overrides=overrides)
        out += [(cfg, s) for s in seeds + extra]
    for method, shs in (("ba2", ["none"]), ("budget_aware", list(sharings))):
        for sh in shs:
            for b in budgets:
                cfg = make_mdl_config(profile, method, b, sh, overrides=overrides)
                out += [(cfg, s) for s in seeds + (extra if b == seed_budget else [])]
    return out


def detail_config(profile: str, budget: float, sharing: str, overrides: dict[str, Any] | None = None) -> MDLConfig:
    return make_mdl_config(profile, "budget_aware" if sharing != "none" else "ba2", budget, sharing,
                           overrides=overrides)
