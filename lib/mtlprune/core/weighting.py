"""Loss-weighting axis: how per-task losses combine into the training loss.

A weighting is an `nn.Module` (so learnable weights, e.g. uncertainty weighting, join the optimizer and the
checkpoint) called as `weighting(losses, step) -> (total, weights)`; the trainer logs the weights it returns.
Registered here: `equal` (Σ_t L_t), `static` (fixed weights, one task emphasised), `uncertainty` (Kendall et al.,
CVPR 2018), `dwa` (Liu et al., CVPR 2019) and
`adaptive` (AdapMTL, Xiang et al., ACM MM 2024). A weighting whose constructor takes `iterations` gets the run's
length, so its warm-up and window can be fractions of it (scaled to every profile).
"""

from __future__ import annotations

import inspect
from typing import Any

import torch
from torch import nn

from .config import typed
from .registry import Registry

WEIGHTINGS: Registry = Registry("loss weighting")


class Weighting(nn.Module):
    def __init__(self, tasks: tuple[str, ...]) -> None:
        super().__init__()
        self.tasks = tuple(tasks)

    def forward(self, losses: dict[str, torch.Tensor], step: int) -> tuple[torch.Tensor, dict[str, float]]:
        raise NotImplementedError


@WEIGHTINGS.register("equal")
class EqualWeighting(Weighting):
    """Every task loss with weight 1 (the dense reference and every baseline unless stated)."""

    def forward(self, losses, step):
        return sum(losses.values()), {t: 1.0 for t in losses}


@WEIGHTINGS.register("static")
class StaticWeighting(Weighting):
    """Fixed task weights: `emphasis` (a task, or "" for none) weighs `factor` times each other task, the weights
    normalised to sum to the number of tasks (so the loss scale matches `equal`, which is `emphasis=""`). The study
    tunes `emphasis` on the validation split to give equal weighting its best static setting (`plan.tuned_weighting`)
    before comparing it with AdapMTL's adaptive weights."""

    def __init__(self, tasks, emphasis: str = "", factor: float = 2.0):
        super().__init__(tasks)
        if emphasis and emphasis not in self.tasks:
            raise ValueError(f"static weighting: emphasis {emphasis!r} is not a task of this run; valid: "
                             f"{', '.join(self.tasks)} or '' (equal)")
        if not factor > 0:
            raise ValueError(f"static weighting: factor must be > 0, got {factor}")
        raw = {t: factor if t == emphasis else 1.0 for t in self.tasks}
        scale = len(self.tasks) / sum(raw.values())
        self.fixed = {t: w * scale for t, w in raw.items()}

    def forward(self, losses, step):
        return sum(self.fixed[t] * v for t, v in losses.items()), dict(self.fixed)


@WEIGHTINGS.register("uncertainty")
class UncertaintyWeighting(Weighting):
    """Kendall, Gal & Cipolla, "Multi-task learning using uncertainty to weigh losses", CVPR 2018.

    L = Σ_t ½·exp(−s_t)·L_t + ½·s_t with a learnable s_t = log σ_t² per task (LibMTL's/MTAN's form, one expression for
    every task instead of the paper's separate classification and regression forms). Hyperparameter: `init` (s_t at
    the start, LibMTL: −0.5). The reported weight of task t is ½·exp(−s_t).
    """

    def __init__(self, tasks, init: float = -0.5):
        super().__init__(tasks)
        self.log_var = nn.Parameter(torch.full((len(self.tasks),), float(init)))

    def forward(self, losses, step):
        total = 0.0
        for i, t in enumerate(self.tasks):
            total = total + 0.5 * torch.exp(-self.log_var[i]) * losses[t] + 0.5 * self.log_var[i]
        return total, {t: float(0.5 * torch.exp(-self.log_var[i].detach())) for i, t in enumerate(self.tasks)}


@WEIGHTINGS.register("dwa")
class DynamicWeightAverage(Weighting):
    """Liu, Johns & Davison, "End-to-end multi-task learning with attention" (MTAN), CVPR 2019: Dynamic Weight Average.

    λ_t(k) = T·exp(w_t(k−1)/τ) / Σ_i exp(w_i(k−1)/τ) with w_t(k−1) = L̄_t(k−1)/L̄_t(k−2), the ratio of the task's mean
    training loss over the last two *periods*; λ = 1 for the first two periods. Deviation: a period is `period`
    iterations (the paper uses epochs; our runs are counted in iterations). Hyperparameters: `temperature` τ (2.0),
    `period` (50 iterations).
    """

    def __init__(self, tasks, temperature: float = 2.0, period: int = 50):
        super().__init__(tasks)
        if temperature <= 0 or int(period) < 1:
            raise ValueError(f"dwa needs temperature > 0 and period >= 1, got {temperature}, {period}")
        self.temperature, self.period = float(temperature), int(period)
        self.register_buffer("sums", torch.zeros(len(self.tasks)))  # running sum of the current period
        self.register_buffer("history", torch.zeros(2, len(self.tasks)))  # means of the two previous periods
        self.register_buffer("periods_done", torch.zeros((), dtype=torch.long))
        self.register_buffer("weights", torch.ones(len(self.tasks)))

    def forward(self, losses, step):
        with torch.no_grad():
            self.sums += torch.stack([losses[t].detach().float() for t in self.tasks])
            if (step + 1) % self.period == 0:
                self.history = torch.stack([self.history[1], self.sums / self.period])
                self.sums.zero_()
                self.periods_done += 1
                if self.periods_done >= 2:
                    ratio = self.history[1] / self.history[0].clamp_min(1e-12)
                    self.weights = len(self.tasks) * torch.softmax(ratio / self.temperature, 0)
        total = sum(self.weights[i] * losses[t] for i, t in enumerate(self.tasks))
        return total, {t: float(self.weights[i]) for i, t in enumerate(self.tasks)}


@WEIGHTINGS.register("adaptive")
class AdaptiveWeighting(Weighting):
    """AdapMTL's adaptive task weighting (Xiang et al., ACM MM 2024; official code `main/trainer.py`, adapmtl.md §1.5).

    From the warm-up on, each task's relative loss change between consecutive mini-batches
    d_t(k) = |L_t(k−1) − L_t(k)| / L_t(k) enters a FIFO window; once the window is full the weight of task t is
    T · mean_window(d_t) / Σ_i mean_window(d_i), so a task whose loss still moves gets more weight. Weights are 1
    before that, and no gradient flows through them.
    Hyperparameters: `warmup` and `window` as fractions of the run's iterations (the code's 5000 and 500 of 20,000:
    0.25 and 0.025). Deviations from the code: the weights sum to the number of tasks T (the code hard-codes 3, which
    is wrong for Taskonomy's 5 tasks); the window is at least 2 steps.
    """

    def __init__(self, tasks, iterations: int, warmup: float = 0.25, window: float = 0.025):
        super().__init__(tasks)
        if not (0 <= warmup < 1 and 0 < window <= 1):
            raise ValueError(f"adaptive weighting needs warmup in [0, 1) and window in (0, 1] (fractions of the run), "
                             f"got warmup={warmup}, window={window}")
        self.warmup = int(round(warmup * iterations))
        self.window = max(2, int(round(window * iterations)))
        self.register_buffer("previous", torch.full((len(self.tasks),), float("nan")))
        self.register_buffer("changes", torch.zeros(self.window, len(self.tasks)))
        self.register_buffer("recorded", torch.zeros((), dtype=torch.long))
        self.register_buffer("weights", torch.ones(len(self.tasks)))

    def forward(self, losses, step):
        # every step of an AdapMTL run: few small ops (a weight as a Python float multiplies exactly as the float32
        # tensor it came from)
        with torch.no_grad():
            current = torch.stack([losses[t].detach().float() for t in self.tasks])
            if step >= self.warmup and not torch.isnan(self.previous).any():
                recorded = int(self.recorded)
                self.changes[recorded % self.window] = (self.previous - current).abs() / current.clamp_min(1e-12)
                self.recorded.add_(1)
                if recorded + 1 >= self.window:
                    mean = self.changes.mean(0)
                    total_change = mean.sum()
                    if float(total_change) > 0:
                        self.weights = len(self.tasks) * mean / total_change
            self.previous = current
        weights = self.weights.tolist()
        total = sum(w * losses[t] for w, t in zip(weights, self.tasks))
        return total, dict(zip(self.tasks, weights))


def resolved_params(name: str, params: dict[str, Any]) -> dict[str, Any]:
    """Every constructor hyperparameter of weighting `name` with the value it uses: the given ones typed like their
    defaults (no silent 2.5 -> 2 for an integer period), the rest at their defaults; unknown keys are an error. What
    `build_weighting` constructs with and what a run id hashes (`identity`)."""
    signature = inspect.signature(WEIGHTINGS.get(name).__init__).parameters
    defaults = {p: v.default for p, v in signature.items() if p not in ("self", "tasks", "iterations")}
    unknown = sorted(set(params) - set(defaults))
    if unknown:
        raise ValueError(f"unknown parameter(s) {unknown} for loss weighting {name!r}; valid: "
                         f"{', '.join(defaults) or '(none)'}. Fix the key in weighting_params.")
    return {k: typed(params.get(k, d), type(d), f"{name} weighting parameter {k}", f"default {d!r}")
            for k, d in sorted(defaults.items())}


def build_weighting(name: str, tasks: tuple[str, ...], params: dict[str, Any], iterations: int) -> Weighting:
    cls = WEIGHTINGS.get(name)
    kwargs = resolved_params(name, params)
    if "iterations" in inspect.signature(cls.__init__).parameters:
        kwargs["iterations"] = iterations
    return cls(tasks, **kwargs)
