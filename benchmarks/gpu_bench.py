"""GPU measurements (run on a CUDA machine): dense training-step throughput of the quick and the two paper
configurations (bf16 autocast, as the `full` profile), the AdapMTL ÷ dense step ratio, peak GPU memory, and how many
quick runs can share one GPU before each slows down.

    python benchmarks/gpu_bench.py [--out gpu.json] [--seconds 6] [--pack 1 2 4 8]

Every figure is measured in this one run; the JSON holds them all (with the device name and library versions).
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import statistics
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from step_overhead import make_side  # noqa: E402  (the training step exactly as train.fit runs it)

from _api import make_config  # noqa: E402

PAPER = {"model.head_width": 1024, "model.head_rates": (6, 12, 18, 24), "model.dropout": 0.5,
         "train.precision": "bf16", "train.batch_size": 16}
CONFIGS = {
    "quick": ({}, (48, 64), 32),
    "mobilenetv2 (paper)": ({"model.backbone": "mobilenetv2", **PAPER}, (288, 384), 16),
    "deeplab_resnet34 (paper)": ({"model.backbone": "deeplab_resnet34", **PAPER}, (288, 384), 16),
}


def batch_of(h: int, w: int, bs: int, device: torch.device) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(0)
    b = {"image": torch.rand(bs, 3, h, w, generator=g), "label": torch.randint(-1, 13, (bs, h, w), generator=g),
         "depth": torch.rand(bs, 1, h, w, generator=g) + 0.5,
         "normal": torch.nn.functional.normalize(torch.randn(bs, 3, h, w, generator=g), dim=1)}
    return {k: v.to(device) for k, v in b.items()}


def timed(step, seconds: float) -> float:
    """Seconds per step over about `seconds` of steps (after warm-up), synchronised."""
    for _ in range(3):
        step()
    torch.cuda.synchronize()
    n, t = 0, time.perf_counter()
    while time.perf_counter() - t < seconds:
        step()
        n += 1
    torch.cuda.synchronize()
    return (time.perf_counter() - t) / n


def measure(name: str, overrides: dict, size: tuple[int, int], bs: int, seconds: float) -> dict:
    device = torch.device("cuda")
    batch = batch_of(*size, bs, device)
    out = {}
    for method in ("dense", "adapmtl"):
        torch.cuda.reset_peak_memory_stats()
        cfg = make_config("quick", method, 0.0 if method == "dense" else 0.9,
                          overrides={**overrides, "train.batch_size": bs})
        _, step = make_side_with(cfg, batch, device)
        sec = timed(step, seconds)
        out[method] = {"ms_per_step": 1000 * sec, "images_per_s": bs / sec,
                       "peak_memory_gib": torch.cuda.max_memory_allocated() / 2 ** 30}
        del step
        torch.cuda.empty_cache()
    out["adapmtl_over_dense"] = out["adapmtl"]["ms_per_step"] / out["dense"]["ms_per_step"]
    print(f"{name}: batch {bs} at {size[0]}x{size[1]}, {overrides.get('train.precision', 'float32')}: dense "
          f"{out['dense']['ms_per_step']:.1f} ms/step ({out['dense']['images_per_s']:.0f} img/s, "
          f"{out['dense']['peak_memory_gib']:.2f} GiB), AdapMTL {out['adapmtl']['ms_per_step']:.1f} ms/step, "
          f"ratio {out['adapmtl_over_dense']:.2f}", flush=True)
    return out


def make_side_with(cfg, batch, device):
    """`step_overhead.make_side` for an explicit config (its profile lookup replaced)."""
    import step_overhead

    original = step_overhead.make_config
    step_overhead.make_config = lambda *a, **k: cfg
    try:
        return make_side("quick", cfg.pruning.method, batch, device)
    finally:
        step_overhead.make_config = original


def _worker(seconds: float, queue) -> None:
    torch.backends.cudnn.benchmark = True
    device = torch.device("cuda")
    batch = batch_of(48, 64, 32, device)
    _, step = make_side_with(make_config("quick"), batch, device)
    queue.put(32 / timed(step, seconds))


def packing(counts: list[int], seconds: float) -> dict:
    """Throughput per run when `n` quick dense runs train at once on the one GPU (separate processes)."""
    ctx = mp.get_context("spawn")
    out = {}
    for n in counts:
        queue = ctx.Queue()
        procs = [ctx.Process(target=_worker, args=(seconds, queue)) for _ in range(n)]
        for p in procs:
            p.start()
        rates = [queue.get(timeout=600) for _ in procs]
        for p in procs:
            p.join()
        out[n] = {"images_per_s_per_run": statistics.mean(rates), "images_per_s_total": sum(rates)}
        print(f"packing {n} quick runs: {out[n]['images_per_s_per_run']:.0f} img/s per run, "
              f"{out[n]['images_per_s_total']:.0f} img/s together", flush=True)
    return out


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--out", default=None)
    parser.add_argument("--seconds", type=float, default=6.0)
    parser.add_argument("--pack", type=int, nargs="*", default=[1, 2, 4, 8])
    args = parser.parse_args()
    if not torch.cuda.is_available():
        print("error: no CUDA device", file=sys.stderr)
        return 2
    torch.backends.cudnn.benchmark = True
    result = {"device": torch.cuda.get_device_name(), "torch": torch.__version__, "cuda": torch.version.cuda,
              "configs": {}, "packing": {}}
    for name, (overrides, size, bs) in CONFIGS.items():
        result["configs"][name] = measure(name, overrides, size, bs, args.seconds)
    result["packing"] = packing(args.pack, args.seconds)
    if args.out:
        Path(args.out).write_text(json.dumps(result, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
