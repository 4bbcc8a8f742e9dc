"""Every notebook parameter, checked in one place before any work: the study pipeline checks each manifest variant's
parameters before the first notebook runs, and each notebook checks its own (`check(name, globals())`) in its first
cell, so a bad value in JupyterLab or papermill fails at once with one message naming the parameter, the valid values
and the fix — never after a grid has trained.
"""

from __future__ import annotations

import ast
import math
from typing import Any, Callable

from .profiles import PROFILES

Check = Callable[[Any], str | None]  # None when the value is valid, else what is wrong


def _int(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _num(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)


def one_of(names: Callable[[], list[str]] | tuple[str, ...]) -> Check:
    def check(v: Any) -> str | None:
        valid = list(names() if callable(names) else names)
        return None if isinstance(v, str) and v in valid else f"must be one of {', '.join(map(str, valid))}"
    return check


def optional(inner: Check) -> Check:
    return lambda v: None if v is None else inner(v)


def int_at_least(lo: int) -> Check:
    return lambda v: None if _int(v) and v >= lo else f"must be an integer >= {lo}"


def number_in(lo: float, hi: float, lo_open: bool = True, hi_open: bool = True) -> Check:
    def check(v: Any) -> str | None:
        ok = _num(v) and (v > lo if lo_open else v >= lo) and (v < hi if hi_open else v <= hi)
        return None if ok else f"must be a number in {'(' if lo_open else '['}{lo}, {hi}{')' if hi_open else ']'}"
    return check


def list_of(inner: Check, nonempty: bool = True, unique: bool = True) -> Check:
    def check(v: Any) -> str | None:
        if not isinstance(v, (list, tuple)) or (nonempty and not v):
            return "must be a non-empty list" if nonempty else "must be a list"
        for item in v:
            why = inner(item)
            if why:
                return f"item {item!r} {why}"
        if unique and len(set(map(repr, v))) != len(v):
            return "must not repeat values"
        return None
    return check


def _methods() -> list[str]:
    from .pruning import STRATEGIES
    return [m for m in STRATEGIES.names() if m != "dense"]


def _backbones() -> list[str]:
    from .models import BACKBONES
    return BACKBONES.names()


def _groups() -> list[str]:
    from .ablations import ABLATIONS
    return [*ABLATIONS, "sensitivity"]


def _sharings() -> list[str]:
    from .mdl.sharing import SHARING
    return SHARING.names()


def _datasets() -> list[str]:
    from .datasets import DATASETS

    return DATASETS.names()


def _is_bool(v: Any) -> str | None:
    return None if isinstance(v, bool) else "must be True or False"


def _is_dict(v: Any) -> str | None:
    return None if isinstance(v, dict) and all(isinstance(k, str) for k in v) else \
        "must be a mapping of hyperparameter name -> value, e.g. {'batches': 4}"


SEEDS = optional(list_of(int_at_least(0)))
SPARSITIES = list_of(number_in(0, 1))
def _executors() -> list[str]:
    from .executors import executor_names
    return executor_names()


COMMON = {"profile": one_of(PROFILES), "progress": _is_bool, "executor": optional(one_of(_executors))}

SCHEMAS: dict[str, dict[str, Check]] = {
    "00_findings": {**COMMON, "seeds": SEEDS, "sparsity": number_in(0, 1),
                    "mdl_budget": number_in(0, 1, hi_open=False), "second_dataset": one_of(_datasets)},
    "07_sparse_budget": {**COMMON, "methods": optional(list_of(one_of(_methods))), "seeds": SEEDS,
                         "budgets": optional(list_of(int_at_least(1))), "sparsity": number_in(0, 1)},
    "01_dense_reference": {**COMMON, "seeds": SEEDS, "backbone": optional(one_of(_backbones)),
                           "iterations": optional(int_at_least(1)), "batch_size": optional(int_at_least(1)),
                           "lr": optional(number_in(0, math.inf)), "n_samples": int_at_least(0)},
    "02_pruning_method": {**COMMON, "method": one_of(_methods), "sparsities": SPARSITIES, "seeds": SEEDS,
                          "extra_seeds": optional(list_of(int_at_least(0), nonempty=False)),
                          "seed_sparsity": number_in(0, 1), "method_params": _is_dict},
    "03_baselines_comparison": {**COMMON, "methods": optional(list_of(one_of(_methods))), "sparsities": SPARSITIES,
                                "seeds": SEEDS, "extra_seeds": optional(list_of(int_at_least(0), nonempty=False)),
                                "seed_sparsity": number_in(0, 1), "table_sparsity": number_in(0, 1)},
    "04_adapmtl": {**COMMON, "methods": optional(list_of(one_of(_methods))), "seeds": SEEDS,
                   "sparsity": number_in(0, 1)},
    "05_adapmtl_ablation": {**COMMON, "group": one_of(_groups), "sparsity": number_in(0, 1), "seeds": SEEDS,
                            "inits": list_of(number_in(-1e4, 1e4)), "decays": list_of(number_in(0, math.inf, False))},
    "06_multidomain": {**COMMON, "budgets": list_of(number_in(0, 1, hi_open=False)), "sharings": list_of(
        one_of(_sharings)), "seeds": SEEDS, "extra_seeds": optional(list_of(int_at_least(0), nonempty=False)),
                       "seed_budget": number_in(0, 1, hi_open=False), "sharing": one_of(_sharings),
                       "budget": number_in(0, 1, hi_open=False), "granularity": one_of(("filter", "slice"))},
    "09_dataset": {**COMMON, "dataset": one_of(_datasets), "methods": optional(list_of(one_of(_methods))),
                   "budget_methods": optional(list_of(one_of(_methods))), "seeds": SEEDS,
                   "sparsity": number_in(0, 1)},
    "08_runs": {**COMMON, "seeds": SEEDS, "sparsity": number_in(0, 1)},
}

# (notebook, parameter, the list it must belong to): values shown in detail must be among those the grid runs
MEMBERSHIP = [("02_pruning_method", "seed_sparsity", "sparsities"),
              ("03_baselines_comparison", "seed_sparsity", "sparsities"),
              ("03_baselines_comparison", "table_sparsity", "sparsities"),
              ("06_multidomain", "seed_budget", "budgets"), ("06_multidomain", "budget", "budgets"),
              ("06_multidomain", "sharing", "sharings")]


def check(notebook: str, values: dict[str, Any]) -> None:
    """Raise one ValueError naming the first bad parameter of `notebook` among `values` (e.g. `globals()`)."""
    if notebook not in SCHEMAS:
        raise ValueError(f"no parameter schema for notebook {notebook!r}; add one to mtlprune/notebook_params.py")
    schema = SCHEMAS[notebook]
    missing = [k for k in schema if k not in values]
    if missing:
        raise ValueError(f"notebook {notebook}: parameter(s) {missing} not set")
    for name, rule in schema.items():
        why = rule(values[name])
        if why:
            raise ValueError(f"notebook {notebook}: parameter {name}={values[name]!r} {why}. Fix it in the "
                             f"parameters cell, the papermill -p option or notebooks/manifest.yml.")
    for nb, name, among in MEMBERSHIP:
        if nb == notebook and values[name] not in values[among]:
            raise ValueError(f"notebook {notebook}: parameter {name}={values[name]!r} must be one of {among} "
                             f"{values[among]!r}")
    if notebook == "02_pruning_method" and values["method_params"]:
        from .config import PruningConfig, freeze_params
        from .pruning import build_strategy

        try:  # unknown or ill-typed hyperparameters of the method
            build_strategy(PruningConfig(values["method"], values["sparsities"][0],
                                         freeze_params(values["method_params"])))
        except ValueError as exc:
            raise ValueError(f"notebook {notebook}: parameter method_params: {exc}") from None


def defaults(notebook_path: str) -> dict[str, Any]:
    """The default values of a notebook's parameters cell (papermill's inspection, read as Python literals)."""
    import papermill as pm

    out = {}
    for name, info in pm.inspect_notebook(notebook_path).items():
        try:
            out[name] = ast.literal_eval(info["default"])
        except (ValueError, SyntaxError):
            raise ValueError(f"{notebook_path}: the default of parameter {name} ({info['default']}) is not a "
                             f"literal") from None
    return out
