"""The k-th smallest *slack* of a soft-thresholded model, exactly: AdapMTL's budget projection (`adapmtl.Controlled`).

The slack of weight w under its threshold s_g is z = logit(|w|) − s_g, computed in float32 as
(log a − log1p(−a)) − s_g with a = clamp(|w|, 1e-30, 1 − 1e-7); a weight is pruned at common offset δ iff z ≤ δ, so the
projection needs the k-th smallest z over all weights. `kth_slack` returns exactly `z.kthvalue(k)` of that full
computation (a test checks it against `slack_all`), faster on CPU: z grows with a inside each threshold's group, so a
strided sample brackets the k-th value, weights whose a lies clearly below or above the bracket (by a margin of
`MARGIN` logit units, far beyond float32 rounding) are only counted (one pass of the compiled kernel,
`soft_threshold.c`: `st_bracket`), and the slack is computed, by the same float32 torch operations, for the few percent
inside; the result is checked (the count and the bracket) and the full computation is the fallback whenever the check
fails. Elsewhere (CUDA) `kth_smallest` selects from the full z.
"""

from __future__ import annotations

import ctypes
import math

import numpy as np
import torch

from .native import soft_threshold_kernel
from .soft_threshold import FlatPlan

MARGIN = 1e-3  # logit units; the float32 slack of a weight is within ~3e-5 of its exact value for |z| <= 100
SAMPLE = 4096  # strided probe of the buffer that brackets the k-th value
RANK_MARGIN = 0.02  # the bracket: the probe's quantiles at k/n ± this


A_MIN, A_MAX = 1e-30, 1 - 1e-7  # |w| is clamped into [A_MIN, A_MAX] before its logit


def clamped_abs(flat: torch.Tensor) -> torch.Tensor:
    return flat.abs().clamp_(A_MIN, A_MAX)


def _logit(a: torch.Tensor) -> torch.Tensor:
    """log a − log(1 − a) in float32, consuming `a` (its memory holds −a afterwards)."""
    return torch.log(a).sub_(a.neg_().log1p_())


def slack(a: torch.Tensor, offset: float) -> torch.Tensor:
    """logit(a) − offset, consuming `a`: the slack of one group's weights."""
    return _logit(a).sub_(offset)


def slack_all(plan: FlatPlan, offsets: list[float]) -> torch.Tensor:
    """Every weight's slack, in the buffer's order (the reference computation)."""
    z = _logit(clamped_abs(plan.flat))
    for (lo, hi), s in zip(plan.group_spans, offsets):
        z[lo:hi].sub_(s)  # a float32 value as a number: the same subtraction as with a tensor, one pass
    return z


def kth_smallest(z: torch.Tensor, k: int, sample: int = SAMPLE, margin: float = RANK_MARGIN) -> torch.Tensor:
    """Exactly `z.kthvalue(k).values` (1-based k), faster for large z: a fixed strided sample brackets the k-th value
    within ±`margin` of the ranks, the bracket is checked by counting, and only the values inside it are selected
    from (the full `kthvalue` is the fallback whenever the bracket misses)."""
    n = z.numel()
    if n <= 4 * sample:
        return z.kthvalue(k).values
    # integer positions (a float linspace can round its last index up to n)
    probe = z[torch.arange(sample, device=z.device) * (n - 1) // (sample - 1)].sort().values
    q = k / n
    lo = probe[max(0, int((q - margin) * sample))]
    hi = probe[min(sample - 1, int((q + margin) * sample) + 1)]
    below = int(torch.count_nonzero(z < lo))
    inside = z[(z >= lo) & (z <= hi)]
    if below < k <= below + inside.numel():
        return inside.kthvalue(k - below).values
    return z.kthvalue(k).values


def _sigmoid(x: float) -> float:
    return 1.0 / (1.0 + math.exp(-x)) if x > -700 else 0.0


def _float32_down(x: float) -> np.float32:
    f = np.float32(x)
    return f if float(f) <= x else np.nextafter(f, np.float32(-np.inf))


def _float32_up(x: float) -> np.float32:
    f = np.float32(x)
    return f if float(f) >= x else np.nextafter(f, np.float32(np.inf))


def kth_slack(plan: FlatPlan, offsets: list[float], k: int) -> float:
    """The k-th smallest slack (1-based) over all weights of `plan`, `offsets` being each group's threshold s_g:
    exactly `slack_all(plan, offsets).kthvalue(k)`."""
    flat = plan.flat
    n = flat.numel()
    if flat.device.type != "cpu" or flat.dtype != torch.float32 or n <= 4 * SAMPLE:
        return float(kth_smallest(slack_all(plan, offsets), k))
    # the bracket, from the slack of a strided sample (float64: it only has to be close)
    positions = np.arange(SAMPLE) * (n - 1) // (SAMPLE - 1)
    starts = np.array([lo for lo, _ in plan.group_spans])
    probe_offsets = np.asarray(offsets, dtype=np.float64)[np.searchsorted(starts, positions, side="right") - 1]
    sampled = np.clip(np.abs(flat.numpy()[positions].astype(np.float64)), A_MIN, A_MAX)
    probe = np.sort(np.log(sampled) - np.log1p(-sampled) - probe_offsets)
    q = k / n  # near either end the bracket is open there (a probe's extreme misses the true one)
    lo = float(probe[int((q - RANK_MARGIN) * SAMPLE)]) if q > RANK_MARGIN else -math.inf
    hi = float(probe[int((q + RANK_MARGIN) * SAMPLE) + 1]) if q + RANK_MARGIN < 1 - 2 / SAMPLE else math.inf
    # slack grows with a inside a group: a <= sigmoid(lo + s − MARGIN) has slack < lo, a >= sigmoid(hi + s + MARGIN)
    # has slack > hi (bounds rounded outwards to float32); the kernel counts the first and copies the weights in
    # between, in one pass (`soft_threshold.c`: st_bracket)
    lows = [float(_float32_down(_sigmoid(lo + s - MARGIN))) for s in offsets]
    highs = [float(_float32_up(_sigmoid(hi + s + MARGIN))) for s in offsets]
    n_groups = len(offsets)
    buffer = torch.empty(n, dtype=torch.float32)
    counts = (ctypes.c_int64 * n_groups)()
    below = ctypes.c_int64()
    soft_threshold_kernel().st_bracket(flat.data_ptr(), plan.c_arrays()[0], (ctypes.c_float * n_groups)(*lows),
                                       (ctypes.c_float * n_groups)(*highs), n_groups, A_MIN, A_MAX, buffer.data_ptr(),
                                       counts, ctypes.byref(below))
    below = below.value
    groups = buffer[:sum(counts)].split(list(counts))
    candidates = torch.cat([slack(a, s) for a, s in zip(groups, offsets)]).numpy()  # `slack_all`'s float32 ops
    if below < k <= below + candidates.size:
        value = float(np.partition(candidates, k - below - 1)[k - below - 1])
        if lo <= value <= hi:  # then every counted weight lies below it and every skipped one above
            return value
    return float(slack_all(plan, offsets).kthvalue(k).values)
