"""The study's throughput alone and beside a busy neighbour, for runs that use every core (2 OpenMP threads, one run
at a time) and runs pinned to one thread (packed side by side by the local executor), measured in one go.

    python benchmarks/neighbour.py                      # 4 quick dense runs of 60 iterations per scenario
    python benchmarks/neighbour.py --runs 6 --iterations 100

The neighbour is one CPU-bound process (a pure-Python busy loop, like a browser tab or a test suite at work) started
before and stopped after each timed grid. Each grid trains in a fresh temporary run store (the generated dataset is
shared). Prints runs per hour for each scenario and the slowdown the neighbour causes (the issue's target: <= 1.5x for
the pinned, packed runs). Run it on an otherwise quiet machine.
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import os
import sys
import tempfile
import time

from mtlprune.core.data.loading import ensure_data
from mtlprune.runs.grid import run_pairs
from mtlprune.study.profiles import make_config


def _busy() -> None:
    while True:
        pass


def timed_grid(threads: int, runs: int, iterations: int, neighbour: bool) -> float:
    cfg = make_config("quick", overrides={"train.iterations": iterations, "train.threads": threads})
    ensure_data(cfg.data.synthetic, progress=False, dataset=cfg.data.dataset)
    hog = mp.get_context("spawn").Process(target=_busy, daemon=True) if neighbour else None
    before = os.environ.get("MTLPRUNE_RUNS")
    with tempfile.TemporaryDirectory(prefix="mtlprune-neighbour-") as tmp:
        os.environ["MTLPRUNE_RUNS"] = tmp
        try:
            if hog is not None:
                hog.start()
                time.sleep(0.5)
            t = time.perf_counter()
            run_pairs([(cfg, s) for s in range(runs)], progress=False, executor="local")
            return time.perf_counter() - t
        finally:
            if hog is not None:
                hog.terminate()
                hog.join()
            if before is None:
                os.environ.pop("MTLPRUNE_RUNS", None)
            else:
                os.environ["MTLPRUNE_RUNS"] = before


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--runs", type=int, default=4)
    ap.add_argument("--iterations", type=int, default=60)
    args = ap.parse_args(argv)
    print(f"{os.cpu_count()} cores; {args.runs} quick dense runs of {args.iterations} iterations per grid", flush=True)
    rows = {}
    for label, threads in (("every core, one run at a time (threads 0)", 0), ("pinned, packed (threads 1)", 1)):
        alone = timed_grid(threads, args.runs, args.iterations, False)
        busy = timed_grid(threads, args.runs, args.iterations, True)
        rows[label] = (alone, busy)
        print(f"{label:44s} alone {3600 * args.runs / alone:7.0f} runs/h ({alone:5.1f} s)   with a neighbour "
              f"{3600 * args.runs / busy:7.0f} runs/h ({busy:5.1f} s)   slowdown x{busy / alone:.2f}", flush=True)
    (a0, b0), (a1, b1) = rows.values()
    print(f"pinned vs every core: alone x{a0 / a1:.2f} the throughput, with a neighbour x{b0 / b1:.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
