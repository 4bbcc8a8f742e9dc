"""A smoke grid through the `local`, `processes` and `ray` executors, in one run, on fresh run stores.

    python benchmarks/executors.py [--methods random magnitude_global snip lth] [--workers 2]

Each executor computes the same grid (one dense reference, then the pruned runs that start from it) from an empty
store; printed: wall times, their ratio to `local`, and the executor overhead per run ((T − T_local) / runs: process
start-up, imports, Ray's scheduling and object transfers; negative when workers run in parallel faster).
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time

from mtlprune.runs.executors import ensure_ray
from mtlprune.runs.grid import run_pairs
from mtlprune.study.grids import pruning_grid


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--methods", nargs="+", default=["random", "magnitude_global", "magnitude_layer", "snip"])
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--profile", default="smoke")
    args = parser.parse_args()
    os.environ["MTLPRUNE_WORKERS"] = str(args.workers)
    pairs = pruning_grid(args.profile, args.methods, [0.9], [0], [])
    n_runs = len(pairs) + 1
    times = {}
    with tempfile.TemporaryDirectory() as root:
        for name in ("local", "processes", "ray"):
            os.environ["MTLPRUNE_RUNS"] = os.path.join(root, name)
            if name == "ray":
                t = time.perf_counter()
                ensure_ray()  # cluster start-up, reported apart (a study starts it once)
                print(f"ray: local cluster started in {time.perf_counter() - t:.1f} s", flush=True)
            t = time.perf_counter()
            run_pairs(pairs, profile=args.profile, progress=False, executor=name)
            times[name] = time.perf_counter() - t
            print(f"{name}: {times[name]:.1f} s for {n_runs} runs", flush=True)
    base = times["local"]
    for name in ("processes", "ray"):
        print(f"{name} / local = {times[name] / base:.2f}; overhead per run {(times[name] - base) / n_runs:+.2f} s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
