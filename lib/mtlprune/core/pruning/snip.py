"""SNIP (Lee et al., ICLR 2019): connection sensitivity at initialization, then train the sparse net.

Score |∂L/∂c| = |g ⊙ w| at c = 1 on `batches` mini-batches (1, as the official code) of the freshly initialized
network, with L the *sum* of the task losses (the entangled multi-task version; DiSparse-static is the per-task one);
keep the global top (1 − s). Deviations: biases are not pruned (the official code includes them); the initializer is
PyTorch's default, not variance scaling; training uses the profile's sparse phase from that initialization.
"""

from __future__ import annotations

from .base import STRATEGIES, param
from .masks import effective_weights, global_masks
from .masked import MaskedStrategy
from .saliency import task_gradients


@STRATEGIES.register("snip")
class Snip(MaskedStrategy):
    needs_dense = False

    def __init__(self, cfg):
        super().__init__(cfg)
        self.batches = param(self.params, "batches", 1, int, lambda v: v >= 1, "an integer >= 1")

    def masks(self, ctx):
        grads = task_gradients(ctx.model, ctx.train_batches(), self.batches, ctx.device, per_task=False)["all"]
        weights = effective_weights(ctx.model)
        return global_masks({n: grads[n] * weights[n].abs() for n in weights}, self.cfg.sparsity)
