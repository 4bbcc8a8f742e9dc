"""Dense training throughput (images/s) per profile, measured side by side in one process, and the quick study's wall
time.

    python benchmarks/throughput.py                # throughput of every profile's dense model (synthetic batches)
    python benchmarks/throughput.py --study        # also time `python -m mtlprune study --profile quick` from an
                                                   # empty run store (minutes; uses a temporary MTLPRUNE_RUNS)

Throughput uses random batches of each profile's input size, so it needs no dataset; the full profile's
DeepLab-ResNet34 is measured at the NYU-v2 size (288x384) on whatever device `auto` picks.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time

import torch

from _api import build_model, make_config, memory_format, pick_device, task_losses

INPUT = {"smoke": (24, 32), "quick": (48, 64), "full": (288, 384)}


def throughput(profile: str, steps: int, warmup: int = 2) -> tuple[float, str]:
    cfg = make_config(profile)
    device = pick_device("auto")
    torch.manual_seed(0)
    model = build_model(cfg.model, cfg.tasks).to(device, memory_format=memory_format(cfg.train)).train()
    opt = torch.optim.Adam(model.parameters(), lr=cfg.train.lr)
    h, w = INPUT[profile]
    bs = cfg.train.batch_size
    batch = {"image": torch.rand(bs, 3, h, w), "label": torch.randint(-1, 13, (bs, h, w)),
             "depth": torch.rand(bs, 1, h, w) + 0.5,
             "normal": torch.nn.functional.normalize(torch.randn(bs, 3, h, w), dim=1)}
    batch = {k: v.to(device) for k, v in batch.items()}
    for i in range(warmup + steps):
        if i == warmup:
            if device.type == "cuda":
                torch.cuda.synchronize()
            t = time.perf_counter()
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=device.type == "cuda"):
            preds = model(batch["image"])
        loss = sum(task_losses(preds, batch).values())
        opt.zero_grad()
        loss.backward()
        opt.step()
    if device.type == "cuda":
        torch.cuda.synchronize()
    return bs * steps / (time.perf_counter() - t), str(device)


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--study", action="store_true", help="also time the quick study from an empty run store")
    parser.add_argument("--steps", type=int, default=20)
    args = parser.parse_args()
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads")
    rates = {}
    for profile in ("smoke", "quick", "full"):
        on_cpu_full = profile == "full" and not torch.cuda.is_available()  # seconds per step on 2 cores: keep it short
        rates[profile], device = throughput(profile, 2 if on_cpu_full else args.steps, 1 if on_cpu_full else 2)
        print(f"{profile:6s} dense training: {rates[profile]:9.1f} img/s on {device} "
              f"(batch {make_config(profile).train.batch_size}, {INPUT[profile][0]}x{INPUT[profile][1]})")
    print(f"ratio quick/full throughput {rates['quick'] / rates['full']:.1f}")
    if args.study:
        with tempfile.TemporaryDirectory() as runs:
            t = time.perf_counter()
            proc = subprocess.run([sys.executable, "-m", "mtlprune", "study", "--profile", "quick"],
                                  env={**os.environ, "MTLPRUNE_RUNS": runs})
            print(f"quick study wall time {time.perf_counter() - t:.0f} s (exit {proc.returncode})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
