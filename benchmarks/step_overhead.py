"""Training-step time of AdapMTL ÷ dense on the same model and batch, measured side by side in one process.

    python benchmarks/step_overhead.py [--profile quick] [--rounds 15] [--steps 10] [--method adapmtl] [--set K=V]

Both sides run the step the training loop runs (`train.fit`): forward, task losses, loss weighting, backward, the
strategy's `before_step`, Adam, the strategy's `after_step`. Dense: plain weights, `equal` weighting. AdapMTL: soft
thresholded weights (one threshold per component), its `adaptive` weighting, its own optimizer group and the budget
projection every `project_every` (4) steps. Rounds alternate dense and AdapMTL blocks so drifts in machine load hit
both; the ratio is of the medians over rounds (the lines before it give the per-round spread, the ratio of the
fastest rounds and, on a virtual machine, the share of CPU time its host took away while measuring). The last line is
`ratio X.XX` (the issue's target: <= 1.10 on CPU).
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch

from _overrides import parse_sets
from _api import (TrainContext, build_model, build_optimizer, build_strategy, build_weighting, keep_freed_memory,
                  make_config, memory_format, pick_device, plain_state_dict, step_autocast, task_losses)

INPUT = {"smoke": (24, 32), "quick": (48, 64), "full": (288, 384)}


def make_side(profile: str, method: str, batch: dict[str, torch.Tensor], device: torch.device,
              overrides: dict | None = None):
    """A model, weighting, strategy and optimizer set up exactly as `train.fit` would, and its one-step function."""
    cfg = make_config(profile, method, 0.0 if method == "dense" else 0.9, overrides=overrides)
    keep_freed_memory()  # as train.fit does
    torch.manual_seed(0)
    model = build_model(cfg.model, cfg.tasks).to(device).train()
    dense_state = plain_state_dict(model)  # the weights a pruned run starts from (before any reparametrization)
    weighting = build_weighting(cfg.weighting.name, cfg.tasks, dict(cfg.weighting.params), cfg.train.iterations)
    strategy = build_strategy(cfg.pruning)
    strategy.install(model)
    model.to(device, memory_format=memory_format(cfg.train))  # as train.fit does: masks and thresholds join the model
    ctx = TrainContext(model=model, cfg=cfg, device=device, train_batches=lambda: iter(()),
                       dense_state=dense_state if strategy.needs_dense else None)
    strategy.setup(ctx)
    opt = build_optimizer(model, weighting, strategy, cfg.train)
    state = {"step": 0}

    def step() -> None:
        with step_autocast(cfg.train, device):  # the run's precision, as train.fit runs the forward pass
            preds = model(batch["image"])
        total, _ = weighting(task_losses(preds, batch), state["step"])
        opt.zero_grad(set_to_none=True)
        total.backward()
        strategy.before_step(ctx, state["step"])
        opt.step()
        state["step"] += 1
        strategy.after_step(ctx, state["step"])

    return cfg, step


def cpu_ticks() -> tuple[int, int] | None:
    """(all, stolen) CPU ticks of this machine so far (Linux /proc/stat), or None where there is no such file."""
    try:
        with open("/proc/stat") as f:
            fields = [int(v) for v in f.readline().split()[1:]]
    except (OSError, ValueError):
        return None
    return sum(fields[:8]), fields[7] if len(fields) > 7 else 0


def timed(step, n: int, device: torch.device) -> float:
    if device.type == "cuda":
        torch.cuda.synchronize()
    t = time.perf_counter()
    for _ in range(n):
        step()
    if device.type == "cuda":
        torch.cuda.synchronize()
    return (time.perf_counter() - t) / n


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--profile", default="quick", choices=list(INPUT))
    parser.add_argument("--method", default="adapmtl")
    parser.add_argument("--rounds", type=int, default=15)
    parser.add_argument("--steps", type=int, default=10)
    parser.add_argument("--set", action="append", default=[], help="KEY=VALUE overrides for both sides, e.g. "
                        "train.precision=float32")
    args = parser.parse_args()
    device = pick_device("auto")
    overrides = parse_sets(args.set)
    cfg = make_config(args.profile, args.method, 0.9, overrides=overrides)
    h, w = INPUT[args.profile]
    bs = cfg.train.batch_size  # the sparse phase's batch
    g = torch.Generator().manual_seed(0)
    batch = {"image": torch.rand(bs, 3, h, w, generator=g), "label": torch.randint(-1, 13, (bs, h, w), generator=g),
             "depth": torch.rand(bs, 1, h, w, generator=g) + 0.5,
             "normal": torch.nn.functional.normalize(torch.randn(bs, 3, h, w, generator=g), dim=1)}
    batch = {k: v.to(device) for k, v in batch.items()}
    _, dense_step = make_side(args.profile, "dense", batch, device, overrides)
    _, pruned_step = make_side(args.profile, args.method, batch, device, overrides)
    for step in (dense_step, pruned_step):  # warm-up: allocator, kernels, the weighting's first window
        timed(step, 3, device)
    dense, pruned = [], []
    ticks = cpu_ticks()
    for _ in range(args.rounds):
        dense.append(timed(dense_step, args.steps, device))
        pruned.append(timed(pruned_step, args.steps, device))
    d, p = statistics.median(dense), statistics.median(pruned)
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, {device}, profile {args.profile}, "
          f"precision {cfg.train.precision}, batch {bs} at {h}x{w}, {args.rounds} rounds x {args.steps} steps")
    print(f"dense step   {1000 * d:8.2f} ms (median)")
    print(f"{args.method} step {1000 * p:8.2f} ms (median)")
    # on a shared machine memory-bound work slows most when neighbours load the caches: the spread of the per-round
    # ratios and the ratio of the fastest rounds show how much of the median ratio is the machine's state
    per_round = sorted(b / a for a, b in zip(dense, pruned))
    print(f"per-round ratios {per_round[0]:.2f} .. {per_round[-1]:.2f}; fastest rounds {min(pruned) / min(dense):.2f}")
    after = cpu_ticks()
    if ticks and after and after[0] > ticks[0]:  # a virtual machine's host taking its CPUs away slows both sides
        print(f"CPU time stolen by the host while measuring: {100 * (after[1] - ticks[1]) / (after[0] - ticks[0]):.0f} %")
    print(f"ratio {p / d:.2f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
