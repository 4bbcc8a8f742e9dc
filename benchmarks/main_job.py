"""The main job's speed in one run: this tree's quick step against a revision's, the step's fraction of this
machine's float32 (and bf16) matmul peak, and the study's runs per hour alone and beside a busy neighbour.

    python benchmarks/main_job.py [--against 09d20ac]

Runs, one after another (never side by side), `step_speed.py --against REV`, `step_profile.py --models quick` and
`neighbour.py`, then prints the lines that answer the question together. Run it on an otherwise quiet machine: about
five minutes on 2 cores.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent


def run(script: str, *args: str) -> list[str]:
    print(f"$ python benchmarks/{script} {' '.join(args)}", flush=True)
    proc = subprocess.run([sys.executable, str(HERE / script), *args], cwd=HERE, capture_output=True, text=True)
    lines = [line for line in proc.stdout.splitlines() if line.strip()]
    for line in lines:
        print(f"    {line}", flush=True)
    if proc.returncode:
        print(proc.stderr[-2000:], file=sys.stderr)
        raise SystemExit(f"benchmarks/{script} failed (exit {proc.returncode})")
    return lines


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--against", default="09d20ac", help="the git revision the quick step is compared with")
    args = ap.parse_args(argv)
    speed = run("step_speed.py", "--against", args.against)
    profile = run("step_profile.py", "--models", "quick")
    neighbour = run("neighbour.py")
    print("\nsummary")
    print(f"  quick dense step, this tree vs {args.against}: {speed[-1]}")
    for line in profile:
        if "peak" in line or "GFLOP" in line:
            print(f"  {line.strip()}")
    for line in neighbour[1:]:
        print(f"  {line.strip()}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
