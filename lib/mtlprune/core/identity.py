"""Run identity: a run's id is `<kind>-<hash>`, the hash over the **fully resolved** config.

Fully resolved means every field of the config with its value (defaults included), and the method's and the loss
weighting's hyperparameters with the values the method actually uses (its own defaults filled in). So changing any
default — a dataclass field's, a method's or a weighting's — changes exactly the ids of the runs it affects, and a
cached run trained under the old value is never reused (open_lth omits defaults from the hash instead; that keeps ids
when a field is added, but silently reuses stale runs when a default changes, which this study cannot afford).
The price: adding a config field changes every id of that config type, so every run is recomputed once.
Two steps: `resolved(cfg)` fills in what the registries know (method and weighting defaults, the revisions of the
code paths the model and the method take), and `hash_resolved` is a pure function of that dict. `run_id(cfg)` is the
id of any kind of run (multi-task, multi-domain, source pretraining).
Giving a hyperparameter its default value explicitly (`--param project_every=4`) gives the same id as omitting it.

`SCHEMA` salts every hash: bump it when the meaning of a field changes without its value changing. The seed is not
hashed: it is a folder level.
"""

from __future__ import annotations

import functools
import hashlib
import json
from typing import Any

import torch

from .config import MDLConfig, RunConfig, SourceConfig, to_dict
from .data.datasets import DATASETS
from .models import build_model
from .models.convolution import routes_around_onednn
from .pruning import STRATEGIES, build_strategy
from .weighting import resolved_params

SCHEMA = 4  # 1: canonical configs with defaults omitted; 2: fully resolved configs; 3: the fast training step;
# 4: multi-domain and source runs log validation accuracy (history.jsonl) and a latency IQR (summary), and soft-
# threshold gradients are summed per layer: a run cached before has neither, or other rounding
# (fused heads, matrix upsampling, fused Adam, masked-sum losses: the same functions, other float rounding)


# Fields added to a config after the schema above, with the value they were introduced with, per config type (the
# field's path inside the config): such a field is hashed only when it differs from that value. A run at the
# introduction value computes what it did before the field existed, so it keeps its id; any other value (a later
# default included: the comparison is with this literal, not with the live default) changes the id.
INTRODUCED: dict[type, dict[tuple[str, ...], Any]] = {
    RunConfig: {("data", "dataset"): "nyuv2", ("train", "threads"): 0},
    MDLConfig: {("source", "data", "packaged"): None, ("source", "memory_format"): "contiguous",
                ("train", "memory_format"): "contiguous"},
    SourceConfig: {("data", "packaged"): None, ("memory_format",): "contiguous"},
}


# Numerical revisions of code paths that only some models take: a config whose model takes one is salted with its
# revision, so its runs cached before the change are recomputed while every other id stays. `pointwise_stride`: the
# 1×1 strided convolutions computed as subsample + stride 1 (`models.convolution`; oneDNN's own kernel gave wrong
# weight gradients there), i.e. models with such a layer of < 16 input channels (the smoke ResNet, width 4).
# `soft_threshold`: the threshold gradients of STR and AdapMTL (and its ablations) summed in float64 by the compiled
# kernel (`pruning.soft_threshold`; revision 1 summed in float32 in torch's order), i.e. every method whose strategy
# lists it in `code_paths`.
# `taskonomy_decoding`: Tiny-Taskonomy's labels decoded as the papers' loaders decode them (raw 0 unlabelled, raw
# 1..17 the classes; keypoints and edges clipped and mapped onto [-1, 1]; `data.taskonomy`), i.e. every run of a
# dataset whose spec lists it in `code_paths`.
REVISIONS: dict[str, int] = {"pointwise_stride": 2, "soft_threshold": 2, "taskonomy_decoding": 2}


@functools.lru_cache(maxsize=256)
def _revisions(model: Any, tasks: tuple[str, ...]) -> dict[str, int]:
    try:
        with torch.device("meta"):  # the architecture only: no memory, no initialisation cost
            net = build_model(model, tasks)
    except (ValueError, KeyError):  # an invalid model trains nothing; `validate` names its error
        return {}
    return {"pointwise_stride": REVISIONS["pointwise_stride"]} if routes_around_onednn(net) else {}


def resolved(cfg: Any) -> dict[str, Any]:
    """The plain dict a run id hashes: every field (those in `INTRODUCED` only when they differ from their
    introduction value), and resolved method / weighting hyperparameters."""
    out = to_dict(cfg)
    for (*parents, leaf), value in INTRODUCED.get(type(cfg), {}).items():
        holder = out
        for key in parents:
            holder = holder[key]
        if holder.get(leaf) == value:
            del holder[leaf]
    if isinstance(cfg, RunConfig):
        out["pruning"]["params"] = method_params(cfg.pruning)
        out["weighting"]["params"] = resolved_params(cfg.weighting.name, dict(cfg.weighting.params))
        out["dense"] = resolved(cfg.dense) if cfg.dense is not None else None
        if revisions := {**_revisions(cfg.model, tuple(cfg.tasks)), **method_revisions(cfg.pruning),
                         **dataset_revisions(cfg.data.dataset)}:
            out["revisions"] = revisions
    return out


def hash_resolved(resolved_config: dict[str, Any]) -> str:
    """The 12-hex-digit hash of a resolved config (`resolved`), salted with `SCHEMA`: a pure function of the dict."""
    blob = json.dumps({"schema": SCHEMA, "config": resolved_config}, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(blob.encode()).hexdigest()[:12]


@functools.lru_cache(maxsize=4096)
def config_hash(cfg: Any) -> str:
    return hash_resolved(resolved(cfg))


def run_id(cfg: Any) -> str:
    """`<kind>-<hash>`: the id of a run of any kind (its folder in the run store)."""
    return f"{cfg.kind}-{config_hash(cfg)}"


def method_revisions(pruning: Any) -> dict[str, int]:
    """The revisions of the code paths the pruning method takes (`PruningStrategy.code_paths`)."""
    return {path: REVISIONS[path] for path in STRATEGIES.get(pruning.method).code_paths}


def dataset_revisions(dataset: str) -> dict[str, int]:
    """The revisions of the code paths the dataset's reading takes (`DatasetSpec.code_paths`; none for an unknown
    dataset, which `validate` names)."""
    return {path: REVISIONS[path] for path in DATASETS.get(dataset).code_paths} if dataset in DATASETS else {}


def method_params(pruning: Any) -> dict[str, Any]:
    """Every hyperparameter the pruning method reads, with the value it uses (defaults filled in)."""
    return dict(sorted(build_strategy(pruning).params.resolved.items()))
