"""The hooks through which a pruning method plugs into the one training loop (no method names in the loop).

The loop calls, in order: `install(model)` on every start, fresh or resumed (add reparameterizations, so a
checkpoint's state dict fits), `setup(ctx)` once before the first step (compute masks, install parametrizations, load the
dense weights the method starts from), `extra_parameters()` and `param_groups(model)` when building the optimizer
(learnable thresholds; a group with its own learning rate), `before_step(ctx, step)` between backward and the optimizer
step (e.g. drop a gradient), `after_step(ctx, step)` after every optimizer step (re-apply masks, follow a schedule,
project onto a budget), and `scalars()` whenever it logs (thresholds, current sparsity...). `state_dict`/`load_state_dict` make a strategy resumable from a checkpoint.
`dense` is the identity strategy used by the dense reference.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterator

import torch
from torch import nn

from ..config import PruningConfig, RunConfig, TrainConfig, typed
from ..registry import Registry

STRATEGIES: Registry = Registry("pruning method")


@dataclass
class TrainContext:
    """What a strategy may use: the model, the run config, training batches and, for pruned runs, the dense weights."""

    model: nn.Module
    cfg: RunConfig
    device: torch.device
    train_batches: Callable[[], Iterator[dict[str, torch.Tensor]]]
    dense_state: dict[str, torch.Tensor] | None = None
    dense_dir: Path | None = None  # the dense run's seed folder (its snapshots are the LTH rewinding points)
    seed: int = 0
    batch_rng: torch.Generator | None = None  # drives `train_batches`; saved in checkpoints so resumes replay it
    extras: dict[str, Any] = field(default_factory=dict)


class PruningStrategy:
    needs_dense = False  # True: the run starts from the trained dense reference (`cfg.dense`)
    prunes = True  # False: a control that keeps every weight (its sparsity must be 0)
    keeps_snapshots = False  # True: the run saves weight snapshots early in training (LTH rewinding points)
    code_paths: tuple[str, ...] = ()  # numerically revised code paths the method takes (`identity.REVISIONS`)

    def __init__(self, cfg: PruningConfig) -> None:
        self.cfg = cfg
        self.params = MethodParams(cfg.params)

    def install(self, model: nn.Module) -> None:
        pass

    def setup(self, ctx: TrainContext) -> None:
        if ctx.dense_state is not None:
            ctx.model.load_state_dict(ctx.dense_state)

    def extra_parameters(self) -> list[nn.Parameter]:
        return []

    def param_groups(self, model: nn.Module, train: TrainConfig) -> list[dict[str, Any]]:
        """Optimizer groups with their own settings (e.g. `lr`); their parameters leave the default group."""
        return []

    def before_step(self, ctx: TrainContext, step: int) -> None:
        pass

    def after_step(self, ctx: TrainContext, step: int) -> None:
        pass

    def updates(self, iterations: int) -> int | None:
        """How many of a run's `after_step` calls do periodic work (mask updates at fractions of the run), for the
        cost model (`runs.cost`: a 6-step timing run would otherwise price an update into every step); None when
        `after_step` costs about the same at every step."""
        return None

    def scalars(self) -> dict[str, float]:
        return {}

    def state_dict(self) -> dict[str, Any]:
        return {}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        pass


@STRATEGIES.register("dense")
class Dense(PruningStrategy):
    """No pruning: the dense multi-task reference every Δ is measured against. Keeps weight snapshots at the
    rewinding points LTH can use (`REWIND_FRACTIONS` of its iterations)."""

    keeps_snapshots = True
    prunes = False


REWIND_FRACTIONS = (0.0, 0.01, 0.02, 0.05, 0.1)  # of the dense run's iterations; 0 = initialization


def snapshot_steps(iterations: int) -> list[int]:
    return sorted({int(round(f * iterations)) for f in REWIND_FRACTIONS})


def cubic_ramp(target: float, step: float, start: float, end: float) -> float:
    """Zhu & Gupta's schedule: 0 before `start`, `target` from `end`, target·(1 − (1 − progress)³) in between."""
    if step >= end:
        return target
    if step < start:
        return 0.0
    return target * (1 - (1 - (step - start) / (end - start)) ** 3)


class MethodParams(dict):
    """A method's hyperparameters (`PruningConfig.params`) that remembers which keys the method read, so a key no
    method reads (a typo such as `mechansim`) is rejected instead of silently training the default."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.read: set[str] = set()
        self.resolved: dict[str, Any] = {}  # name -> the value the method uses (its default when not given)

    def get(self, key: str, default: Any = None) -> Any:
        self.read.add(key)
        return super().get(key, default)

    def __getitem__(self, key: str) -> Any:
        self.read.add(key)
        return super().__getitem__(key)

    def __contains__(self, key: object) -> bool:
        if isinstance(key, str):
            self.read.add(key)
        return super().__contains__(key)


def param(params: dict[str, Any], name: str, default: Any, kind: type, check: Callable[[Any], bool], rule: str) -> Any:
    """A method hyperparameter from `PruningConfig.params`, type-checked, with one clear error."""
    value = typed(params.get(name, default), kind, f"pruning parameter {name}", rule)
    if not check(value):
        raise ValueError(f"pruning parameter {name}={value!r} out of range: {rule}")
    if isinstance(params, MethodParams):
        params.resolved[name] = value  # part of the run id (`identity`): a changed default changes the id
    return value


def build_strategy(cfg: PruningConfig) -> PruningStrategy:
    """The strategy of `cfg`; a hyperparameter the method never reads is an error naming it and the valid ones."""
    strategy = STRATEGIES.get(cfg.method)(cfg)
    unknown = sorted(set(strategy.params) - strategy.params.read)
    if unknown:
        valid = sorted(strategy.params.read) or ["(none: this method takes no parameters)"]
        raise ValueError(f"unknown parameter(s) {unknown} for pruning method {cfg.method!r}; valid: "
                         f"{', '.join(valid)}. Fix the key in --param / method_params.")
    return strategy
