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
                  repeats: int = 21) -> dict[str, float]:
    """One batch of domain 0 through both models, alternating them `repeats` times after a warm-up: the median
    milliseconds of each, and the median and interquartile range of the per-repeat ratio (pruned ÷ reference; pairing
    each repeat cancels most of the machine's drift). A network with nothing removed measures ≈ 1.0."""
    x = normalise_input(torch.randint(0, 255, (batch, 3, size, size), dtype=torch.uint8,
                                      generator=torch.Generator().manual_seed(0)))
    pruned.eval()
    reference.eval()
    times = {"p": [], "r": []}
    with torch.inference_mode():
        for _ in range(3):  # warm-up
            pruned(x, 0)
            reference(x, 0)
        for i in range(repeats):
            order = (("p", pruned), ("r", reference)) if i % 2 == 0 else (("r", reference), ("p", pruned))
            for key, model in order:
                t = time.perf_counter()
                model(x, 0)
                times[key].append(time.perf_counter() - t)
    ratios = [p / r for p, r in zip(times["p"], times["r"])]
    q1, med, q3 = statistics.quantiles(ratios, n=4)
    return {"model_ms": 1000 * statistics.median(times["p"]), "single_backbone_ms": 1000 * statistics.median(times["r"]),
            "ratio": med, "ratio_q1": q1, "ratio_q3": q3}


def parameters(model: MultiDomainResNet) -> int:
    return count_parameters(model)
