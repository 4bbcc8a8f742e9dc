"""One-shot pruning of the trained dense reference, then sparse fine-tuning: random, magnitude (global, per layer), LTH.

- `random`: a uniformly random unstructured mask at the target (a sanity floor), applied to the dense weights.
- `magnitude_global` (Han et al. 2015 style): keep the largest |w| over the union of all prunable weights, so each
  layer and component ends up with its own sparsity.
- `magnitude_layer`: the same fraction in every layer (ranking within each layer).
- `lth` (Frankle & Carbin 2019; rewinding: Frankle et al. 2020): the global magnitude mask of the trained dense net,
  with the kept weights *rewound* to their values at initialization (param `rewind` = 0) or at an early fraction of the
  dense run (`rewind` in 0.01, 0.02, 0.05, 0.1: the dense run saves those snapshots), then trained. BatchNorm and biases
  are rewound too (as in open_lth). Deviation: one pruning round (IMP with rewinding is `imp` + several rounds).

Hyperparameters: the target sparsity; `lth`: `rewind`. All fine-tune with the profile's sparse phase.
"""

from __future__ import annotations

import torch

from ..errors import CacheError
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
        load_into_masked(ctx.model, torch.load(snap, map_location=ctx.device))
        set_masks(ctx.model, masks)
