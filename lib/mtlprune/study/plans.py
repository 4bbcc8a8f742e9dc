"""Each chapter's runs, declared once for planning: a chapter plan takes the chapter's notebook parameters (the
notebook's defaults, its manifest variant's and its profile's, as papermill injects them) and returns the grids the
notebook runs, section by section, built with the same `grids` functions and arguments as the notebook's own cells.

`render.plan` turns these into what a study will train and how long it will take (`python -m mtlprune study --plan`);
the manifest names each chapter's plan (`plan:`). The smoke book test checks that the runs a study leaves in an empty
store are exactly its plans' runs, so a notebook and its plan cannot drift apart unnoticed.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable

from ..core.registry import Registry
from ..core.config import RunConfig
from . import grids
from .design import HARD_MASK, SEED_SPARSITY
from .evidence import precision_twin, with_controls
from .profiles import make_config


@dataclass(frozen=True)
class Section:
    """One grid a chapter runs. `derived`: its configs depend on results not computed yet (the hard-mask control
    takes AdapMTL's learned allocation), so `pairs` holds stand-ins of the same cost until those results exist."""
    name: str
    pairs: tuple[tuple[Any, int], ...]
    derived: bool = False


Plan = Callable[..., list[Section]]
PLANS: Registry = Registry("chapter plan")


def _unlabel(labelled: list[tuple[str, Any, int]]) -> list[tuple[Any, int]]:
    return [(cfg, seed) for _, cfg, seed in labelled]


def _section(name: str, pairs: list[tuple[Any, int]]) -> Section:
    return Section(name, tuple(pairs))


@PLANS.register("findings")
def findings(profile: str, seeds: list[int] | None = None, sparsity: float = SEED_SPARSITY, mdl_budget: float = 0.5,
             second_dataset: str = "taskonomy", **_: Any) -> list[Section]:
    g = grids.findings_grids(profile, seeds, sparsity, mdl_budget, second_dataset)
    return [  # the notebook's grids, in its order (multi-domain in the first: one grid packs them together)
        _section("dense doubling, comparison, budget B, 2B and multi-domain",
                 g["dense_doubling"] + g["comparison"] + g["budget"] + g["mdl"]),
        _section("causes and static weights", _unlabel(g["causes"] + g["candidates"])),
        _section(f"{second_dataset}: dense doubling, comparison and budget B, 2B",
                 g["second_doubling"] + g["second"] + g["second_budget"]),
    ]


@PLANS.register("dense_reference")
def dense_reference(profile: str, seeds: list[int] | None = None, backbone: str | None = None,
                    iterations: int | None = None, batch_size: int | None = None, lr: float | None = None,
                    **_: Any) -> list[Section]:
    seeds = grids.check_seeds(seeds if seeds is not None else grids.default_seeds(profile))
    cfg = grids.dense_config(profile, backbone=backbone, iterations=iterations, batch_size=batch_size, lr=lr)
    out = [_section("dense reference", [(cfg, s) for s in seeds]),
           _section("doubling test", grids.dense_doubling_pairs(cfg, seeds)[len(seeds):])]
    if cfg.train.precision == "bf16":  # `evidence.precision_control`: its float32 twin measures what bf16 changes
        out.append(_section("float32 twin", [(precision_twin(cfg), s) for s in seeds]))
    return out


@PLANS.register("pruning_method")
def pruning_method(profile: str, method: str, sparsities: list[float], seeds: list[int] | None = None,
                   extra_seeds: list[int] | None = None, seed_sparsity: float = SEED_SPARSITY,
                   method_params: dict[str, Any] | None = None, **_: Any) -> list[Section]:
    return [_section(method, grids.pruning_grid(profile, [method], sparsities, seeds, extra_seeds, seed_sparsity,
                                                {method: method_params} if method_params else None))]


@PLANS.register("baselines_comparison")
def baselines_comparison(profile: str, sparsities: list[float], methods: list[str] | None = None,
                         seeds: list[int] | None = None, extra_seeds: list[int] | None = None,
                         seed_sparsity: float = SEED_SPARSITY, table_sparsity: float = SEED_SPARSITY,
                         **_: Any) -> list[Section]:
    pairs = grids.pruning_grid(profile, methods, sparsities, seeds, extra_seeds, seed_sparsity)
    at = [(cfg, s) for cfg, s in pairs if cfg.pruning.sparsity == table_sparsity]
    return [_section("every baseline at every level", pairs), _section("controls", with_controls(at))]


def _hard_mask(profile: str, seeds: list[int] | None, sparsity: float) -> Section:
    try:
        return Section(HARD_MASK, tuple(_unlabel(grids.hard_mask_pairs(profile, seeds, sparsity))))
    except ValueError:  # AdapMTL's runs are not complete: stand-ins at its target, one per seed, the same cost
        tasks = make_config(profile, "adapmtl", sparsity).tasks
        cfg: RunConfig = make_config(profile, "magnitude_component", sparsity,
                                     method_params={c: sparsity for c in ("backbone", *tasks)})
        return Section(HARD_MASK, tuple((cfg, s) for s in grids.check_seeds(
            seeds if seeds is not None else grids.default_seeds(profile, "main"))), derived=True)


@PLANS.register("adapmtl")
def adapmtl(profile: str, methods: list[str] | None = None, seeds: list[int] | None = None,
            sparsity: float = SEED_SPARSITY, **_: Any) -> list[Section]:
    return [
        _section("comparison", grids.comparison_pairs(profile, methods, seeds, sparsity)),
        _section("causes", _unlabel(grids.cause_pairs(profile, seeds, sparsity))),
        _hard_mask(profile, seeds, sparsity),
        _section("static weights", _unlabel(grids.weighting_candidates(profile, seeds, sparsity))),
    ]


@PLANS.register("adapmtl_ablation")
def adapmtl_ablation(profile: str, group: str, sparsity: float = SEED_SPARSITY, seeds: list[int] | None = None,
                     inits: list[float] = (), decays: list[float] = (), **_: Any) -> list[Section]:
    return [_section(group, _unlabel(grids.ablation_group_pairs(profile, group, sparsity, seeds, inits, decays)))]


@PLANS.register("multidomain")
def multidomain(profile: str, budgets: list[float], sharings: list[str], seeds: list[int] | None = None,
                extra_seeds: list[int] | None = None, seed_budget: float = 0.5, granularity: str = "filter",
                **_: Any) -> list[Section]:
    return [_section("multi-domain", grids.mdl_grid(profile, budgets, sharings, seeds, extra_seeds, seed_budget,
                                                    {"method.granularity": granularity}))]


@PLANS.register("sparse_budget")
def sparse_budget(profile: str, methods: list[str] | None = None, budgets: list[int] | None = None,
                  seeds: list[int] | None = None, sparsity: float = SEED_SPARSITY, **_: Any) -> list[Section]:
    return [_section("sparse-phase lengths", grids.budget_pairs(profile, methods, budgets, seeds, sparsity))]


@PLANS.register("runs")
def runs(profile: str, seeds: list[int] | None = None, sparsity: float = SEED_SPARSITY, **_: Any) -> list[Section]:
    return [_section("comparison", grids.comparison_pairs(profile, seeds=seeds, sparsity=sparsity))]


@PLANS.register("dataset")
def dataset(profile: str, dataset: str = "taskonomy", methods: list[str] | None = None,
            budget_methods: list[str] | None = None, seeds: list[int] | None = None, sparsity: float = SEED_SPARSITY,
            **_: Any) -> list[Section]:
    return [
        _section(f"{dataset}: dense reference", grids.dense_pairs(profile, seeds, dataset)),
        _section(f"{dataset}: budget B, 2B", grids.budget_pairs(profile, budget_methods,
                                                                 grids.doubling_budgets(profile), seeds, sparsity,
                                                                 dataset)),
        _section(f"{dataset}: comparison", grids.comparison_pairs(profile, methods, seeds, sparsity, dataset)),
    ]
