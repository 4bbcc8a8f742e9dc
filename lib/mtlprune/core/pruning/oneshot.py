"""One-shot pruning of the trained dense reference, then sparse fine-tuning: random, magnitude (global, per layer), LTH.

- `random`: a uniformly random unstructured mask at the target (a sanity floor), applied to the dense weights.
- `magnitude_global` (Han et al. 2015 style): keep the largest |w| over the union of all prunable weights, so each
  layer and component ends up with its own sparsity.
- `magnitude_layer`: the same fraction in every layer (ranking within each layer).
- `lth` (Frankle & Carbin 2019; rewinding: Frankle et al. 2020): the global magnitude mask of the trained dense net,
  with the kept weights *rewound* to their values at initialization (param `rewind` = 0) or at an early fraction of the
  dense run (`rewind` in 0.01, 0.02, 0.05, 0.1: the dense run saves those snapshots), then trained. BatchNorm and biases
  are rewound too (as in open_lth). Deviation: one pruning round (IMP with rewinding is `imp` + several rounds).

- `magnitude_component`: magnitude masks at a given sparsity per component (the hard-mask control of AdapMTL's learned
  allocation, see its class).

Hyperparameters: the target sparsity; `lth`: `rewind`; `magnitude_component`: one sparsity per component. All fine-tune
with the profile's sparse phase.
"""

from __future__ import annotations

import torch

from ..errors import CacheError
from ..models import prunable_layers
from .base import REWIND_FRACTIONS, STRATEGIES, param, snapshot_steps
from .masked import MaskedStrategy, load_into_masked
from .masks import effective_weights, global_masks, layer_masks, set_masks


@STRATEGIES.register("random")
class RandomPruning(MaskedStrategy):
    def masks(self, ctx):
        gen = torch.Generator().manual_seed(10_000 + ctx.seed)
        scores = {n: torch.rand(w.shape, generator=gen) for n, w in effective_weights(ctx.model).items()}
        return global_masks(scores, self.cfg.sparsity)


@STRATEGIES.register("magnitude_global")
class GlobalMagnitude(MaskedStrategy):
    def masks(self, ctx):
        return global_masks({n: w.abs() for n, w in effective_weights(ctx.model).items()}, self.cfg.sparsity)


@STRATEGIES.register("magnitude_layer")
class LayerMagnitude(MaskedStrategy):
    def masks(self, ctx):
        return layer_masks({n: w.abs() for n, w in effective_weights(ctx.model).items()}, self.cfg.sparsity)


@STRATEGIES.register("lth")
class LotteryTicket(MaskedStrategy):
    def __init__(self, cfg):
        super().__init__(cfg)
        self.rewind = param(self.params, "rewind", 0.0, float, lambda v: v in REWIND_FRACTIONS,
                            f"one of {REWIND_FRACTIONS} (fraction of the dense run's iterations)")

    def setup(self, ctx):
        if ctx.dense_state is None or ctx.dense_dir is None:
            raise CacheError("lth needs the trained dense reference of this run (cfg.dense)")
        load_into_masked(ctx.model, ctx.dense_state)
        masks = global_masks({n: w.abs() for n, w in effective_weights(ctx.model).items()}, self.cfg.sparsity)
        iters = ctx.cfg.dense.train.iterations
        step = int(round(self.rewind * iters))
        snap = ctx.dense_dir / "snapshots" / f"step_{step}.pt"
        if step not in snapshot_steps(iters) or not snap.exists():
            raise CacheError(f"the dense run has no weight snapshot at step {step} ({snap}); it was trained before "
                               f"snapshots existed: delete {ctx.dense_dir} to retrain it")
        load_into_masked(ctx.model, torch.load(snap, map_location=ctx.device, weights_only=True))
        set_masks(ctx.model, masks)


@STRATEGIES.register("magnitude_component")
class ComponentMagnitude(MaskedStrategy):
    """Magnitude masks at a **given** sparsity per component (parameters `backbone` and one per task head, each in
    [0, 1)): the largest |w| of each component are kept. With AdapMTL's learned allocation as the parameters it is the
    hard-mask control of the study: the same allocation and the same fine-tuning without soft-threshold shrinkage, which
    separates what the allocation buys from what the shrinkage does. `cfg.sparsity` is the overall level the
    allocation was learned at (nominal: the achieved sparsity follows from the allocation and is what is reported)."""

    def __init__(self, cfg):
        super().__init__(cfg)
        self.allocation = {k: param(self.params, k, None, float, lambda v: 0.0 <= v < 1.0, "in [0, 1)")
                           for k in sorted(self.params)}
        if "backbone" not in self.allocation:
            raise ValueError("magnitude_component needs a sparsity per component: backbone=... and one per task "
                             "head (e.g. --param backbone=0.85 --param seg=0.95 ...)")

    def masks(self, ctx):
        weights = effective_weights(ctx.model)
        by_component: dict[str, dict[str, torch.Tensor]] = {}
        for layer in prunable_layers(ctx.model):
            by_component.setdefault(layer.component, {})[layer.name] = weights[layer.name].abs()
        missing = sorted(set(by_component) - set(self.allocation))
        extra = sorted(set(self.allocation) - set(by_component))
        if missing or extra:
            raise ValueError(f"magnitude_component: allocation for components {sorted(self.allocation)}, the model has "
                             f"{sorted(by_component)} (missing {missing}, unknown {extra})")
        masks: dict[str, torch.Tensor] = {}
        for component, scores in by_component.items():
            masks.update(global_masks(scores, self.allocation[component]))
        return masks
