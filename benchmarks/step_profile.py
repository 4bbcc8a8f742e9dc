"""Where a training step's time goes, for the quick and the full model, against this machine's matmul peak.

    python benchmarks/step_profile.py [--models quick full] [--steps 8] [--method dense]

For each model: the step's FLOPs (`torch.utils.flop_counter`, forward + backward), its wall time split into phases
(data: batch gather + flip; forward; losses; backward; optimizer; the strategy's hooks), and `torch.profiler`'s
self-CPU time grouped into convolutions (forward + backward), parametrizations (weight masks / soft thresholds),
memory-bound ops (BatchNorm, activations, upsampling, losses, copies, element-wise), the optimizer, and the rest;
Python overhead = wall time − profiled op time. The achieved rate (FLOP/s) is compared with a 1024×1024 float32 and
bf16 matmul measured in the same run.
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections import defaultdict

import torch
from torch.utils.flop_counter import FlopCounterMode

from _overrides import parse_sets

from _api import (TrainContext, augment, build_model, build_optimizer, build_strategy, build_weighting,
                  iterate_batches, keep_freed_memory, make_config, memory_format, plain_state_dict, step_autocast,
                  task_losses)

MODELS = ("quick", "full")
FULL_SIZE = (288, 384)  # the paper model at paper resolution; quick runs at its own profile's size
GROUPS = [("convolution", ("conv", "mkldnn")), ("parametrization", ("parametriz", "softshrink", "sign", "sigmoid",
                                                                    "dot")),
          ("optimizer", ("adam", "_foreach", "lerp", "addcdiv", "sqrt")),
          ("memory-bound", ("batch_norm", "native_batch_norm", "relu", "threshold", "upsample", "interpolate",
                            "copy", "cat", "add", "mul", "div", "sub", "index", "flip", "clone", "normalize",
                            "nll", "log_softmax", "abs", "sum", "mean", "norm", "fill", "zero", "empty", "to",
                            "masked", "clamp", "neg", "pow", "stack", "contiguous", "where"))]


def peak(dtype: torch.dtype, n: int = 1024, reps: int = 20) -> float:
    a, b = torch.randn(n, n, dtype=dtype), torch.randn(n, n, dtype=dtype)
    for _ in range(3):
        a @ b
    t = time.perf_counter()
    for _ in range(reps):
        a @ b
    return 2 * n ** 3 * reps / (time.perf_counter() - t)


def setup(profile: str, method: str, batch_size: int | None, sets: dict | None = None):
    overrides = {**({"train.batch_size": batch_size} if batch_size else {}), **(sets or {})}
    if profile == "full":  # the paper model on generated data at paper resolution (no real data here)
        overrides = {"data.synthetic.height": FULL_SIZE[0], "data.synthetic.width": FULL_SIZE[1], **overrides}
        cfg = make_config("quick", method, 0.0 if method == "dense" else 0.9, overrides={
            "model.backbone": "deeplab_resnet34", "model.head_width": 1024, "model.head_rates": (6, 12, 18, 24),
            "model.dropout": 0.5, "train.batch_size": batch_size or 16, **overrides})
    else:
        cfg = make_config(profile, method, 0.0 if method == "dense" else 0.9, overrides=overrides)
    keep_freed_memory()  # as train.fit does (a no-op for an older revision without it)
    torch.manual_seed(0)
    model = build_model(cfg.model, cfg.tasks).train()
    dense_state = plain_state_dict(model)
    weighting = build_weighting(cfg.weighting.name, cfg.tasks, dict(cfg.weighting.params), cfg.train.iterations)
    strategy = build_strategy(cfg.pruning)
    strategy.install(model)
    model.to(memory_format=memory_format(cfg.train))  # as train.fit does
    ctx = TrainContext(model=model, cfg=cfg, device=torch.device("cpu"), train_batches=lambda: iter(()),
                       dense_state=dense_state if strategy.needs_dense else None)
    strategy.setup(ctx)
    opt = build_optimizer(model, weighting, strategy, cfg.train)
    h, w = cfg.data.synthetic.height, cfg.data.synthetic.width
    n = max(cfg.train.batch_size * 2, 64)
    g = torch.Generator().manual_seed(0)
    data = {"image": torch.rand(n, 3, h, w, generator=g), "label": torch.randint(-1, 13, (n, h, w), generator=g),
            "depth": torch.rand(n, 1, h, w, generator=g) + 0.5,
            "normal": torch.nn.functional.normalize(torch.randn(n, 3, h, w, generator=g), dim=1)}
    return cfg, model, weighting, strategy, ctx, opt, data


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--models", nargs="+", default=["quick", "full"], choices=list(MODELS))
    parser.add_argument("--steps", type=int, default=8)
    parser.add_argument("--method", default="dense")
    parser.add_argument("--full-batch", type=int, default=2, help="batch of the full model (CPU memory and time)")
    parser.add_argument("--set", action="append", default=[], help="KEY=VALUE overrides, e.g. train.precision=bf16")
    args = parser.parse_args()
    p32, p16 = peak(torch.float32), peak(torch.bfloat16)
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads; matmul 1024^3: float32 {p32 / 1e9:.1f} "
          f"GFLOP/s, bf16 {p16 / 1e9:.1f} GFLOP/s")
    for profile in args.models:
        cfg, model, weighting, strategy, ctx, opt, data = setup(profile, args.method,
                                                                args.full_batch if profile == "full" else None,
                                                                parse_sets(args.set))
        gen = torch.Generator().manual_seed(0)
        autocast = step_autocast(cfg.train, torch.device("cpu"))
        phases: dict[str, list[float]] = defaultdict(list)

        def step(k: int) -> None:
            t0 = time.perf_counter()
            batch = next(iterate_batches(data, cfg.train.batch_size, gen, True))
            batch = augment(batch, gen)
            t1 = time.perf_counter()
            with autocast:
                preds = model(batch["image"])
            t2 = time.perf_counter()
            total, _ = weighting(task_losses(preds, batch), k)
            t3 = time.perf_counter()
            opt.zero_grad(set_to_none=True)
            total.backward()
            t4 = time.perf_counter()
            strategy.before_step(ctx, k)
            opt.step()
            t5 = time.perf_counter()
            strategy.after_step(ctx, k + 1)
            t6 = time.perf_counter()
            for name, v in zip(("data", "forward", "losses", "backward", "optimizer", "strategy hooks"),
                               (t1 - t0, t2 - t1, t3 - t2, t4 - t3, t5 - t4, t6 - t5)):
                phases[name].append(v)

        batch = next(iterate_batches(data, cfg.train.batch_size, gen, True))
        with FlopCounterMode(display=False) as fc:
            with autocast:
                preds = model(batch["image"])
            weighting(task_losses(preds, batch), 0)[0].backward()
        flops = fc.get_total_flops()
        opt.zero_grad(set_to_none=True)
        for k in range(3):
            step(k)
        phases.clear()
        for k in range(args.steps):
            step(k)
        wall = sum(sum(v) for v in phases.values()) / args.steps
        with torch.profiler.profile(activities=[torch.profiler.ProfilerActivity.CPU]) as prof:
            for k in range(min(args.steps, 4)):
                step(k)
        n_prof = min(args.steps, 4)
        grouped: dict[str, float] = defaultdict(float)
        for ev in prof.key_averages():
            name = ev.key.lower()
            group = next((g for g, keys in GROUPS if any(s in name for s in keys)), "other ops")
            grouped[group] += ev.self_cpu_time_total / 1e6 / n_prof
        profiled = sum(grouped.values())
        print(f"\n{profile} model ({cfg.model.backbone}, head width {cfg.model.head_width}), batch "
              f"{cfg.train.batch_size} at {cfg.data.synthetic.height}x{cfg.data.synthetic.width}, method {args.method}, "
              f"precision "
              f"{getattr(cfg.train, 'precision', 'float32')}: "
              f"{flops / 1e9:.2f} GFLOP per step (forward + backward)")
        print(f"  step {1000 * wall:.1f} ms -> {flops / wall / 1e9:.1f} GFLOP/s = {flops / wall / p32:.2f} of the "
              f"float32 matmul peak, {flops / wall / p16:.2f} of the bf16 peak")
        print("  phases (median ms): " + ", ".join(f"{k} {1000 * statistics.median(v):.1f}"
                                                   for k, v in phases.items()))
        prof_wall = wall  # profiling adds overhead; shares are of the profiled op time
        print("  profiled op time by kind (ms per step): " + ", ".join(
            f"{k} {1000 * v:.1f}" for k, v in sorted(grouped.items(), key=lambda kv: -kv[1])))
        print(f"  python and framework overhead (wall - profiled ops, unprofiled step): "
              f"{1000 * max(prof_wall - profiled, 0):.1f} ms")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
