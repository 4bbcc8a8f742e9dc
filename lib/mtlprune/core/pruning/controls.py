"""Controls that prune nothing, for Δ that measures pruning and not extra training.

- `dense_finetune` (equal-training control): the trained dense reference trained on for exactly a pruned run's sparse
  phase (same iterations, batch, learning-rate schedule, augmentation, seed), with no pruning. A pruned run that starts
  from the dense reference trains longer than the reference did; Δ against this control (`delta_t_control` in the
  results) removes that advantage, Δ against the dense reference (`delta_t`) keeps it. The book reports both.
  Hyperparameters: none (sparsity must be 0). Loss weighting: the dense reference's (equal).
"""

from __future__ import annotations

from .base import STRATEGIES, PruningStrategy


@STRATEGIES.register("dense_finetune")
class DenseFinetune(PruningStrategy):
    needs_dense = True
    prunes = False
