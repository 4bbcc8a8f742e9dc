"""This tree's quick dense training step against a git revision's, timed side by side in one run.

    python benchmarks/step_speed.py --against ae2790d [--rounds 3] [--long 40]

The revision is checked out once as a git worktree (under /tmp); each round times both trees in fresh processes
(`_fit_timer.py`: the marginal per-step time of `train.fit` on the quick dense config, data and augmentation
included), alternating which goes first so drifts in machine load hit both. The last line is
`speedup X.XX` = median(REV) ÷ median(this tree). Each tree times its own quick profile, so a quick problem that
changed between the two (09d20ac: width 16, 48x64; now width 8, 24x32) is part of the ratio.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def worktree(rev: str) -> Path:
    sha = subprocess.run(["git", "-C", str(ROOT), "rev-parse", "--verify", f"{rev}^{{commit}}"], capture_output=True,
                         text=True)
    if sha.returncode:
        raise SystemExit(f"error: {rev!r} is not a commit of this repository ({sha.stderr.strip()})")
    path = Path("/tmp") / f"mtlprune-rev-{sha.stdout.strip()[:12]}"
    if not (path / "lib" / "mtlprune").is_dir():
        subprocess.run(["git", "-C", str(ROOT), "worktree", "add", "--detach", "--force", str(path),
                        sha.stdout.strip()], check=True, capture_output=True)
    return path


def time_tree(tree: Path, args: argparse.Namespace) -> float:
    env = {**os.environ, "PYTHONPATH": str(tree / "lib"),
           "MTLPRUNE_DATA": os.environ.get("MTLPRUNE_DATA", str(ROOT / "data"))}  # one generated dataset for both
    proc = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "_fit_timer.py"), "--short", str(args.short),
                           "--long", str(args.long)], capture_output=True, text=True, env=env, cwd=tree)
    if proc.returncode:
        raise SystemExit(f"error: timing {tree} failed:\n{proc.stderr[-2000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])["ms_per_step"]


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--against", required=True, help="a git revision, e.g. ae2790d")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--short", type=int, default=10)
    parser.add_argument("--long", type=int, default=40)
    args = parser.parse_args()
    old_tree = worktree(args.against)
    times: dict[str, list[float]] = {"rev": [], "this": []}
    for r in range(args.rounds):
        order = [("rev", old_tree), ("this", ROOT)] if r % 2 == 0 else [("this", ROOT), ("rev", old_tree)]
        for name, tree in order:
            times[name].append(time_tree(tree, args))
        print(f"round {r + 1}: {args.against} {times['rev'][-1]:.1f} ms/step, this tree {times['this'][-1]:.1f} "
              f"ms/step", flush=True)
    rev, this = statistics.median(times["rev"]), statistics.median(times["this"])
    print(f"quick dense step (train.fit, each tree's own quick profile: its model, resolution and batch; data and "
          f"augmentation included): {args.against} {rev:.1f} ms, this tree {this:.1f} ms (medians of {args.rounds} "
          f"rounds; a changed quick problem counts in the ratio)")
    print(f"speedup {rev / this:.2f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
