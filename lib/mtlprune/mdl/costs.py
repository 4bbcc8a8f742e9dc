"""What a multi-domain model costs, relative to one single-domain backbone: parameters, MACs (counted with
`torch.utils.flop_counter`, 2 FLOPs per MAC), bytes on disk, and measured CPU latency (pruned vs unpruned, timed side
by side, alternating, median of repeats). Switch latents are not parameters of the deployed model; their binarised
bits are stored (and counted in bytes) as booleans.
"""

from __future__ import annotations

import io
import statistics
import time

import torch
from torch.utils.flop_counter import FlopCounterMode

from .model import MultiDomainResNet, count_parameters, normalise_input


def macs(model: MultiDomainResNet, size: int, d: int = 0) -> int:
    model.eval()
    x = torch.zeros(1, 3, size, size, dtype=torch.uint8)
    with torch.no_grad(), FlopCounterMode(display=False) as counter:
        model(normalise_input(x), d)
    return counter.get_total_flops() // 2


def deployed_state(model: MultiDomainResNet) -> dict[str, torch.Tensor]:
    """What ships: weights, BatchNorms, heads, and each switch as one boolean."""
    return {k: ((v > 0) if "switches" in k else v) for k, v in model.state_dict().items()}


def disk_bytes(state: dict[str, torch.Tensor]) -> int:
    buf = io.BytesIO()
    torch.save(state, buf)
    return len(buf.getvalue())


@torch.no_grad()
def latency_ratio(pruned: MultiDomainResNet, reference: MultiDomainResNet, size: int, batch: int = 64,
                  repeats: int = 11) -> tuple[float, float, float]:
    """(pruned ms, reference ms, ratio): one batch of domain 0, alternating the two models, medians of `repeats`."""
    x = normalise_input(torch.randint(0, 255, (batch, 3, size, size), dtype=torch.uint8,
                                      generator=torch.Generator().manual_seed(0)))
    pruned.eval()
    reference.eval()
    times = {"p": [], "r": []}
    for _ in range(2):  # warm-up
        pruned(x, 0)
        reference(x, 0)
    for _ in range(repeats):
        for key, model in (("p", pruned), ("r", reference)):
            t = time.perf_counter()
            model(x, 0)
            times[key].append(time.perf_counter() - t)
    p, r = statistics.median(times["p"]), statistics.median(times["r"])
    return 1000 * p, 1000 * r, p / r


def parameters(model: MultiDomainResNet) -> int:
    return count_parameters(model)
