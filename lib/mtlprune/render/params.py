"""Notebook parameters, declared once, in each notebook's own `parameters` cell, and checked from there.

A notebook declares every parameter with its kind as an annotation and its default as the value:

    profile: "profile" = "quick"                  # smoke | quick | standard | full
    seeds: "seeds or None" = None                 # None: the profile's seeds
    seed_sparsity: "fraction in sparsities" = 0.9

A kind is one of `KINDS` (what a value must be), optionally `or None`, `in <parameter>` (the value must be one of
that list parameter's values) or, for `method params`, `of <parameter>` (the method whose hyperparameters they are).
Papermill injects values as plain assignments after the parameters cell; its first statement `check(globals())` then
refuses, before any work, a parameter the notebook does not declare and any value of the wrong kind, with one message
naming the parameter, what it must be and the fix. The study pipeline (`book`) checks every manifest variant against
the same declarations before the first notebook runs (`declared`, `check_values`). The library holds no list of
notebooks or of their parameters.
"""

from __future__ import annotations

import ast
import json
import math
from pathlib import Path
from typing import Any, Callable

from ..core.config import PruningConfig, freeze_params
from ..core.data.datasets import DATASETS
from ..core.mdl.sharing import SHARING
from ..core.models import BACKBONES
from ..core.pruning import STRATEGIES, build_strategy
from ..runs.executors import executor_names
from ..study.design import ABLATIONS
from ..study.profiles import PROFILES

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


def _is_bool(v: Any) -> str | None:
    return None if isinstance(v, bool) else "must be True or False"


def _is_mapping(v: Any) -> str | None:
    return None if isinstance(v, dict) and all(isinstance(k, str) for k in v) else \
        "must be a mapping of hyperparameter name -> value, e.g. {'batches': 4}"


def _methods() -> list[str]:
    return [m for m in STRATEGIES.names() if m != "dense"]


FRACTION = number_in(0, 1)
BUDGET = number_in(0, 1, hi_open=False)

# Every kind a parameters cell may declare
KINDS: dict[str, Check] = {
    "profile": one_of(PROFILES),
    "bool": _is_bool,
    "executor": one_of(executor_names),
    "seeds": list_of(int_at_least(0)),
    "extra seeds": list_of(int_at_least(0), nonempty=False),
    "count": int_at_least(0),
    "positive integer": int_at_least(1),
    "positive integers": list_of(int_at_least(1)),
    "fraction": FRACTION,
    "fractions": list_of(FRACTION),
    "budget": BUDGET,
    "budgets": list_of(BUDGET),
    "positive number": number_in(0, math.inf),
    "numbers": list_of(number_in(-1e4, 1e4)),
    "nonnegative numbers": list_of(number_in(0, math.inf, lo_open=False)),
    "method": one_of(_methods),
    "methods": list_of(one_of(_methods)),
    "method params": _is_mapping,
    "backbone": one_of(BACKBONES.names),
    "dataset": one_of(DATASETS.names),
    "sharing": one_of(SHARING.names),
    "sharings": list_of(one_of(SHARING.names)),
    "granularity": one_of(("filter", "slice")),
    "ablation group": one_of((*ABLATIONS, "sensitivity")),
}


def parse_kind(annotation: str) -> tuple[str, bool, str | None, str | None]:
    """(kind, optional, `in` parameter, `of` parameter) of an annotation such as "fraction in sparsities or None"."""
    text = annotation.strip()
    optional = text.endswith(" or None")
    text = text.removesuffix(" or None").strip()
    among = of = None
    if " in " in text:
        text, among = (part.strip() for part in text.split(" in ", 1))
    if " of " in text:
        text, of = (part.strip() for part in text.split(" of ", 1))
    if text not in KINDS:
        raise ValueError(f"parameter kind {annotation!r}: {text!r} is not a kind; valid: {', '.join(KINDS)} "
                         f"(with `or None`, `in <parameter>`, `of <parameter>`)")
    return text, optional, among, of


def check_values(declared: dict[str, str], values: dict[str, Any], where: str) -> None:
    """Raise one ValueError naming the first parameter of `values` that is undeclared, missing or of the wrong kind
    (`declared`: name -> its annotation)."""
    unknown = sorted(set(values) - set(declared))
    if unknown:
        raise ValueError(f"{where}: parameter(s) {unknown} are not declared by the notebook (its parameters: "
                         f"{', '.join(declared)}). Fix the name in the papermill -p option or notebooks/manifest.yml.")
    missing = [k for k in declared if k not in values]
    if missing:
        raise ValueError(f"{where}: parameter(s) {missing} not set")
    for name, annotation in declared.items():
        kind, optional, among, of = parse_kind(annotation)
        value = values[name]
        if value is None and optional:
            continue
        why = KINDS[kind](value)
        if why is None and among is not None and value not in (values.get(among) or []):
            why = f"must be one of {among} {values.get(among)!r}"
        if why is None and of is not None and value:
            try:  # unknown or ill-typed hyperparameters of the method
                build_strategy(PruningConfig(values[of], 0.5, freeze_params(value)))
            except ValueError as exc:
                why = str(exc)
        if why:
            raise ValueError(f"{where}: parameter {name}={value!r} {why}. Fix it in the parameters cell, the papermill "
                             f"-p option or notebooks/manifest.yml.")


def _injected(history: list[str]) -> set[str]:
    """The names papermill assigned: its injected cell (the last executed cell that starts with `# Parameters`)."""
    for source in reversed(history):
        if source.lstrip().startswith("# Parameters"):
            tree = ast.parse(source)
            return {t.id for node in tree.body if isinstance(node, ast.Assign) for t in node.targets
                    if isinstance(t, ast.Name)}
    return set()


def check(namespace: dict[str, Any]) -> None:
    """A notebook's first statement after its parameters cell: `check(globals())`. Refuses an injected parameter the
    parameters cell does not declare, and any declared parameter of the wrong kind, before any work."""
    declared = dict(namespace.get("__annotations__", {}))
    if not declared:
        raise ValueError("this notebook declares no parameters: its parameters cell must annotate each one with its "
                         "kind (`profile: \"profile\" = \"quick\"`)")
    values = {k: namespace[k] for k in declared if k in namespace}
    values.update({k: namespace[k] for k in _injected(list(namespace.get("In", []))) if k in namespace})
    check_values(declared, values, "notebook")


def declared(notebook: Path) -> tuple[dict[str, str], dict[str, Any]]:
    """A notebook's parameters cell read from its file: (name -> kind annotation, name -> default)."""
    nb = json.loads(Path(notebook).read_text())
    cells = [c for c in nb.get("cells", []) if "parameters" in c.get("metadata", {}).get("tags", [])]
    if len(cells) != 1:
        raise ValueError(f"{notebook}: needs exactly one cell tagged `parameters`, found {len(cells)}")
    source = "".join(cells[0]["source"]) if isinstance(cells[0]["source"], list) else cells[0]["source"]
    kinds, defaults = {}, {}
    for node in ast.parse(source).body:
        if not (isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name)
                and isinstance(node.annotation, ast.Constant) and isinstance(node.annotation.value, str)
                and node.value is not None):
            raise ValueError(f"{notebook}: every statement of the parameters cell must be `name: \"kind\" = literal` "
                             f"(line {node.lineno})")
        parse_kind(node.annotation.value)  # an unknown kind is named here
        try:
            defaults[node.target.id] = ast.literal_eval(node.value)
        except ValueError:
            raise ValueError(f"{notebook}: the default of parameter {node.target.id} is not a literal") from None
        kinds[node.target.id] = node.annotation.value
    return kinds, defaults
