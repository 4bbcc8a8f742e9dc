"""Probe how far the sparse phase must run before Δ_T stops moving, on a problem of your choice (one seed by default):
every method at every sparse-phase length with its equal-training control, Δ_T against the dense reference and
against the control, and the time each run took. A research aid for choosing a profile's problem size and sparse-phase
recipe (the study's own criterion, 3 seeds, is `stats.convergence` in the budget chapter).

    python benchmarks/convergence_probe.py --methods adapmtl magnitude_global --budgets 200 400 800 1600 \
        --set model.width=8 --set model.head_width=16 --set data.synthetic.height=24 --set data.synthetic.width=32 \
        --sparse-set train.lr=2e-3 --seeds 0

`--set` changes the dense reference and the pruned runs (the problem); `--sparse-set` the pruned runs and their
controls only (the sparse-phase recipe). Runs go through the run store, so a probe resumes and its runs are cached.
Time the probe only on a quiet machine (nothing else computing); pin threads with --set train.threads=1.
"""

from __future__ import annotations

import argparse
import sys
import time

from _overrides import parse_sets

from mtlprune.core.identity import run_id
from mtlprune.runs.grid import run_pairs
from mtlprune.runs.kinds import summary
from mtlprune.study.evidence import control_config, records
from mtlprune.study.profiles import make_config


def _fmt(value: float | None) -> str:
    """Δ_T to one decimal, or 'collapsed' where a task collapsed (Δ_T undefined)."""
    return "collapsed" if value is None else f"{value:7.1f}"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--profile", default="quick")
    ap.add_argument("--methods", nargs="+", default=["adapmtl", "magnitude_global"])
    ap.add_argument("--budgets", nargs="+", type=int, default=[200, 400, 800, 1600])
    ap.add_argument("--seeds", nargs="+", type=int, default=[0])
    ap.add_argument("--sparsity", type=float, default=0.9)
    ap.add_argument("--set", action="append", default=[], metavar="KEY=VALUE")
    ap.add_argument("--sparse-set", action="append", default=[], metavar="KEY=VALUE")
    args = ap.parse_args(argv)
    problem, recipe = parse_sets(args.set), parse_sets(args.sparse_set)
    pairs = []
    for b in args.budgets:
        for method in args.methods:
            cfg = make_config(args.profile, method, args.sparsity, overrides=problem,
                              sparse_overrides={**recipe, "train.iterations": b})
            pairs += [(cfg, s) for s in args.seeds]
            pairs += [(control_config(cfg), s) for s in args.seeds]
    dense = pairs[0][0].dense
    t = time.perf_counter()
    run_pairs([(dense, s) for s in args.seeds], profile=args.profile, progress=False)
    print(f"dense reference {run_id(dense)}: {time.perf_counter() - t:.0f} s "
          f"({dense.train.iterations} iterations)", flush=True)
    rows = []
    for cfg, seed in pairs:
        if cfg.pruning.method == "dense_finetune":
            continue
        t = time.perf_counter()
        run_pairs([(cfg, seed), (control_config(cfg), seed)], profile=args.profile, progress=False)
        rec = records([(cfg, seed)]).iloc[0]
        ctl = summary(control_config(cfg), seed)
        rows.append((cfg.pruning.method, cfg.train.iterations, seed, rec["delta_t"], rec["delta_t_control"],
                     ctl["delta_t"]["mean"], summary(cfg, seed)["train_seconds"], time.perf_counter() - t))
        m, b, _, vs_dense, vs_control, control, train_s, wall_s = rows[-1]
        print(f"{m:18s} B={b:5d} seed {seed}: Δ_T vs dense {_fmt(vs_dense)}  vs control {_fmt(vs_control)}  "
              f"control vs dense {_fmt(control)}  train {train_s:6.0f} s (wall {wall_s:.0f} s)", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
