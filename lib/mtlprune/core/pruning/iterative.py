"""Pruning that tightens the mask during the sparse phase: gradual magnitude (Zhu & Gupta) and IMP.

- `gradual_magnitude` (Zhu & Gupta 2017): from the dense reference, every `every`·iterations steps between
  `start`·iterations and `end`·iterations the mask is recomputed by global magnitude at
  s_t = s_f·(1 − (1 − (t − t0)/(t1 − t0))³) (s_i = 0), never reviving a pruned weight; fixed at s_f from `end` on.
  Defaults start 0, end 0.7, every 0.05.
- `imp` (iterative magnitude pruning, Han et al. 2015; Frankle & Carbin 2019 without rewinding, i.e. IMP-FT): the sparse
  phase is split into `rounds` equal parts; each round starts by pruning, by global magnitude among the surviving
  weights, to 1 − (1 − s)^(r/R), then retrains. Masks only shrink. Deviation: the paper-style 20 % per round would need
  11/14/21 rounds for 90/95/99 %, each a full retraining; here all rounds share one sparse-phase budget
  (default 4 rounds).
"""

from __future__ import annotations

import math

import torch

from .base import STRATEGIES, TrainContext, cubic_ramp, param
from .masks import global_masks, kept_magnitudes, set_masks
from .masked import MaskedStrategy


def magnitude_within(model, sparsity: float) -> dict[str, torch.Tensor]:
    """Global magnitude mask at `sparsity`, chosen only among currently kept weights (masks only shrink)."""
    return global_masks(kept_magnitudes(model), sparsity)


@STRATEGIES.register("gradual_magnitude")
class GradualMagnitude(MaskedStrategy):
    def __init__(self, cfg):
        super().__init__(cfg)
        frac = lambda v: 0.0 <= v <= 1.0  # noqa: E731
        self.start = param(self.params, "start", 0.0, float, frac, "in [0, 1], fraction of the sparse phase")
        self.end = param(self.params, "end", 0.7, float, lambda v: self.start < v <= 1.0, "in (start, 1]")
        self.every = param(self.params, "every", 0.05, float, lambda v: 0 < v <= 1, "in (0, 1]")
        self.current = 0.0

    def target_at(self, step: int, iterations: int) -> float:
        return cubic_ramp(self.cfg.sparsity, step, self.start * iterations, self.end * iterations)

    def masks(self, ctx):
        self.current = self.target_at(0, ctx.cfg.train.iterations)
        return magnitude_within(ctx.model, self.current)

    def after_step(self, ctx: TrainContext, step: int) -> None:
        iters = ctx.cfg.train.iterations
        interval = max(1, int(round(self.every * iters)))
        if step % interval == 0 or step == int(round(self.end * iters)):
            target = self.target_at(step, iters)
            if target > self.current:
                self.current = target
                set_masks(ctx.model, magnitude_within(ctx.model, target))

    def updates(self, iterations: int) -> int:
        interval, end = max(1, int(round(self.every * iterations))), int(round(self.end * iterations))
        due = set(range(interval, iterations + 1, interval)) | ({end} if 1 <= end <= iterations else set())
        current, n = self.target_at(0, iterations), 0
        for step in sorted(due):
            if (target := self.target_at(step, iterations)) > current:
                current, n = target, n + 1
        return n

    def scalars(self):
        return {"target_sparsity": self.current}

    def state_dict(self):
        return {"current": self.current}

    def load_state_dict(self, state):
        self.current = state["current"]


@STRATEGIES.register("imp")
class IterativeMagnitude(MaskedStrategy):
    def __init__(self, cfg):
        super().__init__(cfg)
        self.rounds = param(self.params, "rounds", 4, int, lambda v: v >= 1, "an integer >= 1")
        self.round = 0

    def round_target(self, r: int) -> float:
        return 1 - (1 - self.cfg.sparsity) ** (r / self.rounds)

    def masks(self, ctx):
        self.round = 1
        return magnitude_within(ctx.model, self.round_target(1))

    def after_step(self, ctx: TrainContext, step: int) -> None:
        per_round = ctx.cfg.train.iterations / self.rounds
        due = min(self.rounds, int(step // per_round) + 1)
        if due > self.round:
            self.round = due
            set_masks(ctx.model, magnitude_within(ctx.model, self.round_target(due)))

    def updates(self, iterations: int) -> int:
        per_round = iterations / self.rounds  # round k + 1 starts at the first step >= k * per_round
        firsts = {s for k in range(1, self.rounds) for s in (math.floor(k * per_round), math.ceil(k * per_round))
                  if 1 <= s <= iterations}
        return len({min(self.rounds, int(s // per_round) + 1) for s in firsts} - {1})

    def scalars(self):
        return {"imp_round": float(self.round)}

    def state_dict(self):
        return {"round": self.round}

    def load_state_dict(self, state):
        self.round = state["round"]
