"""What each profile's evidence runs, defined once for the chapters and the Findings page that share them: the dense
references, the sparse-phase budget grid, the core comparison at the profile's budget (each pruned run with its
equal-training control), the runs that test the causes behind AdapMTL's result (hard masks at its allocation, static
task weights tuned on validation, other threshold granularities), and the multi-domain grid.

Every function validates its arguments and returns (config, seed) pairs (or (label, config, seed) for labelled
variants); running them is `execute.run_pairs`, loading them `evidence.records`.
"""

from __future__ import annotations

from typing import Any, Iterable

from . import catalogue, store
from .config import RunConfig
from .evidence import with_controls
from .grids import budget_grid, check_seeds, default_seeds, pruning_grid, variant_pairs
from .profiles import BUDGET_METHODS, CORE_METHODS, SEED_SPARSITY, dataset_overrides, make_config
from .runner import SUMMARY_KEYS

HARD_MASK = "hard masks at AdapMTL's allocation"
CAUSES: dict[str, dict[str, Any]] = {
    "AdapMTL (per component, adaptive weighting)": {"method": "adapmtl"},
    "AdapMTL, equal weighting": {"method": "adapmtl", "weighting": "equal"},
    "AdapMTL, one global threshold": {"method": "adapmtl_global_threshold"},
    "AdapMTL, one threshold per layer": {"method": "adapmtl_layer_thresholds"},
}
MDL_BUDGETS = {"smoke": (0.5,), "quick": (0.5,), "standard": (1.0, 0.75, 0.5, 0.25), "full": (1.0, 0.75, 0.5, 0.25)}


def _seeds(profile: str, seeds: Iterable[int] | None) -> list[int]:
    return check_seeds(list(seeds)) if seeds is not None else default_seeds(profile, "main")


def dense_pairs(profile: str, seeds: Iterable[int] | None = None,
                dataset: str = "nyuv2") -> list[tuple[RunConfig, int]]:
    cfg = make_config(profile, "dense", overrides=dataset_overrides(dataset))
    return [(cfg, s) for s in _seeds(profile, seeds)]


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
    """The core methods (None: `CORE_METHODS`) at `sparsity` and the profile's budget, each with its control, on
    `dataset` (a registered multi-task dataset)."""
    methods = list(methods) if methods is not None else list(CORE_METHODS)
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
    from .tables import PAPER_KEYS

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
    missing = [s for s in seeds if not store.is_complete(ours.run_id, s)]
    if missing:
        raise ValueError(f"the hard-mask control needs AdapMTL's runs at seeds {missing} first ({ours.run_id}); "
                         f"run cause_pairs / comparison_pairs before it")
    comps: dict[str, list[float]] = {}
    for s in seeds:
        for c, v in store.cached(ours.run_id, s, SUMMARY_KEYS)["sparsity"]["components"].items():
            comps.setdefault(c, []).append(v)
    allocation = {c: round(sum(v) / len(v), 4) for c, v in comps.items()}
    cfg = make_config(profile, "magnitude_component", sparsity, method_params=allocation,
                      overrides=dataset_overrides(dataset))
    return [(HARD_MASK, cfg, s) for s in seeds]


TUNED = "AdapMTL, static weights tuned on validation"


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
    from .metrics import delta_t

    run = store.cached(cfg.run_id, seed, SUMMARY_KEYS)
    dense = store.cached(cfg.dense.run_id, seed, SUMMARY_KEYS)
    return delta_t(run["val_metrics"], dense["val_metrics"])["mean"]


def tuned_weighting(candidates: list[tuple[str, RunConfig, int]]) -> tuple[str, list[tuple[str, RunConfig, int]]]:
    """The candidate with the best mean validation Δ_T over its seeds (`weighting_candidates`, completed), relabelled
    `TUNED`: (the chosen candidate's label, its labelled pairs)."""
    missing = [(label, s) for label, c, s in candidates if not store.is_complete(c.run_id, s)]
    if missing:
        raise ValueError(f"tuning the static weights needs every candidate run first; missing {missing[:3]}")
    scores: dict[str, list[float]] = {}
    for label, cfg, seed in candidates:
        scores.setdefault(label, []).append(validation_score(cfg, seed))
    best = max(scores, key=lambda k: sum(scores[k]) / len(scores[k]))
    return best, [(TUNED, c, s) for label, c, s in candidates if label == best]


def mdl_pairs(profile: str, seeds: Iterable[int] | None = None, budgets: Iterable[float] | None = None,
              sharings: Iterable[str] = ("union",)) -> list[tuple[Any, int]]:
    """The multi-domain grid: the budget-free baselines, BA² and the budget-aware method at `budgets` (None: the
    profile's `MDL_BUDGETS`), every seed."""
    from .mdl import report

    return report.grid(profile, list(budgets) if budgets is not None else list(MDL_BUDGETS[profile]), list(sharings),
                       _seeds(profile, seeds), [], 0.5)
