"""The one list of the study's methods: key, label, family, colour, role and the module that implements it.

Everything that enumerates methods reads this list: the registries' imports (`pruning`, `mdl.methods`), the manifest
(one chapter variant per baseline), the notebooks' default method lists, the plots' labels and colours, and the
tests. Adding a pruning method is its module (a `PruningStrategy` registered under the key) plus one line here.

Roles: `reference` (the dense run every Δ is measured against), `control` (the dense run trained on for a pruned
run's sparse phase: Δ against it measures pruning, not extra training), `baseline` (compared against AdapMTL, one chapter
each), `ours` (the method under study: highlighted in figures), `ablation` (a variant of it).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Method:
    key: str  # the registry key (CLI `--method`)
    label: str  # as shown in the book
    family: str  # methods of a family share a figure panel and a hue
    colour: str  # fixed across every figure
    role: str  # reference | baseline | ours | ablation
    module: str  # the module (inside its package) that registers it


MULTI_TASK: tuple[Method, ...] = (
    Method("dense", "Dense reference", "reference", "#333333", "reference", "base"),
    Method("dense_finetune", "Dense, trained on (control)", "reference", "#777777", "control", "controls"),
    Method("random", "Random", "random", "#9e9e9e", "baseline", "oneshot"),
    Method("magnitude_global", "Global magnitude", "magnitude", "#1f77b4", "baseline", "oneshot"),
    Method("magnitude_layer", "Layer-wise magnitude", "magnitude", "#6baed6", "baseline", "oneshot"),
    Method("gradual_magnitude", "Gradual magnitude (Zhu & Gupta)", "magnitude", "#08519c", "baseline", "iterative"),
    Method("snip", "SNIP", "saliency", "#2ca02c", "baseline", "snip"),
    Method("lth", "Lottery ticket (LTH)", "lottery", "#ff7f0e", "baseline", "oneshot"),
    Method("imp", "Iterative magnitude (IMP)", "lottery", "#d95f02", "baseline", "iterative"),
    Method("str", "STR soft thresholds", "soft threshold", "#9467bd", "baseline", "soft_threshold"),
    Method("disparse_static", "DiSparse static", "DiSparse", "#8c564b", "baseline", "disparse"),
    Method("disparse_pt", "DiSparse pretrained", "DiSparse", "#c49c94", "baseline", "disparse"),
    Method("disparse_dynamic", "DiSparse dynamic", "DiSparse", "#5c3a21", "baseline", "disparse"),
    Method("adapmtl", "AdapMTL", "AdapMTL", "#d62728", "ours", "adapmtl"),
    Method("adapmtl_global_threshold", "AdapMTL, one global threshold", "AdapMTL", "#f08080", "ablation",
           "adapmtl"),
    Method("magnitude_component", "Magnitude at AdapMTL's allocation (hard-mask control)", "AdapMTL", "#fb9a99",
           "ablation", "oneshot"),
    Method("adapmtl_layer_thresholds", "AdapMTL, one threshold per layer", "AdapMTL", "#a50f15", "ablation",
           "adapmtl"),
)

MULTI_DOMAIN: tuple[Method, ...] = (
    Method("individual", "individual networks", "reference", "#333333", "reference", "methods"),
    Method("frozen", "frozen features", "reference", "#9e9e9e", "baseline", "methods"),
    Method("ba2", "BA² (no sharing)", "switches", "#1f77b4", "baseline", "methods"),
    Method("budget_aware", "budget-aware", "switches", "#d62728", "ours", "methods"),
)


def _index(methods: tuple[Method, ...]) -> dict[str, Method]:
    keys = [m.key for m in methods]
    if len(set(keys)) != len(keys):
        raise ValueError(f"catalogue keys repeat: {sorted(k for k in keys if keys.count(k) > 1)}")
    return {m.key: m for m in methods}


_MT = _index(MULTI_TASK)
_MD = _index(MULTI_DOMAIN)


def method(key: str) -> Method:
    """The multi-task method `key` (a clear error naming the valid keys otherwise)."""
    if key not in _MT:
        raise ValueError(f"unknown pruning method {key!r}; valid: {', '.join(_MT)}")
    return _MT[key]


def mdl_method(key: str) -> Method:
    if key not in _MD:
        raise ValueError(f"unknown multi-domain method {key!r}; valid: {', '.join(_MD)}")
    return _MD[key]


def keys(role: str | None = None) -> list[str]:
    """Multi-task method keys in catalogue order, optionally of one role."""
    return [m.key for m in MULTI_TASK if role is None or m.role == role]


def baselines() -> list[str]:
    return keys("baseline")


def modules(methods: tuple[Method, ...] = MULTI_TASK) -> list[str]:
    return list(dict.fromkeys(m.module for m in methods))


def label(key: str) -> str:
    return _MT[key].label if key in _MT else _MD[key].label if key in _MD else key


def colours() -> dict[str, str]:
    """Method key and label -> colour, for every figure (multi-task and multi-domain)."""
    out = {}
    for m in MULTI_TASK + MULTI_DOMAIN:
        out[m.key] = out[m.label] = m.colour
    return out


def mdl_label(method: Any) -> str:
    """A multi-domain run's label (its `MethodConfig`): the catalogue's, with the sharing term of a method that has
    one."""
    base = mdl_method(method.name).label
    if method.sharing == "none":
        return base
    return f"{base} ({method.sharing}{', learnable' if method.learnable_weight else ''})"
