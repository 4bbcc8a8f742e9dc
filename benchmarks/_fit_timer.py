"""Helper of `step_speed.py`: the per-step time of the quick dense training loop (`train.fit`) of whichever
`mtlprune` is on PYTHONPATH (this tree or an older revision: it uses only API that both have).

Marginal cost: fit for `--long` and for `--short` iterations on fresh models, (T_long - T_short) / (long - short), so
set-up, the final checkpoint and compilation-free warm-up cancel. Prints one JSON line {"ms_per_step": ...}.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import torch

from _overrides import parse_sets
from _api import Runtime, TrainContext, build_model, build_strategy, build_weighting, fit, load_data, make_config


def fit_seconds(iterations: int, overrides: dict) -> float:
    cfg = make_config("quick", overrides={"train.iterations": iterations, **overrides})
    train = load_data(cfg, "train", False)
    val = {k: v[:cfg.train.eval_batch_size] for k, v in load_data(cfg, "val", False).items()}
    torch.manual_seed(0)
    model = build_model(cfg.model, cfg.tasks)
    weighting = build_weighting(cfg.weighting.name, cfg.tasks, dict(cfg.weighting.params), cfg.train.iterations)
    strategy = build_strategy(cfg.pruning)
    ctx = TrainContext(model=model, cfg=cfg, device=torch.device("cpu"), train_batches=lambda: iter(()))
    with tempfile.TemporaryDirectory() as d:
        t = time.perf_counter()
        fit(model, weighting, strategy, ctx, train, val, cfg.train, seed=0, flip=True, ckpt_path=Path(d) / "c.pt",
            runtime=Runtime(progress=False, checkpoint_every=10 ** 6))
        return time.perf_counter() - t


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--short", type=int, default=10)
    parser.add_argument("--long", type=int, default=40)
    parser.add_argument("--set", action="append", default=[], help="KEY=VALUE overrides (this tree only)")
    args = parser.parse_args()
    overrides = parse_sets(args.set)
    fit_seconds(3, overrides)  # warm-up: data in memory, allocator, kernels
    short = fit_seconds(args.short, overrides)
    long = fit_seconds(args.long, overrides)
    print(json.dumps({"ms_per_step": 1000 * (long - short) / (args.long - args.short), "torch": torch.__version__,
                      "threads": torch.get_num_threads()}))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
