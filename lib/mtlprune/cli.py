"""Command line: `python -m mtlprune {run, generate, study}`; argparse lives here and only here."""

from __future__ import annotations

import argparse
import json
import sys
import time
from typing import Any

import yaml

from .data.nyuv2 import DataError
from .errors import CacheError
from .profiles import PROFILES


def _parse_set(items: list[str]) -> dict[str, Any]:
    out = {}
    for item in items:
        if "=" not in item:
            raise ValueError(f"--set expects KEY=VALUE (e.g. train.iterations=100), got {item!r}")
        key, value = item.split("=", 1)
        out[key] = yaml.safe_load(value)
    return out


def cmd_run(args: argparse.Namespace) -> int:
    from .profiles import make_config
    from .runner import json_safe, run
    from .train import Runtime

    cfg = make_config(args.profile, args.method, args.sparsity, overrides=_parse_set(args.set),
                      weighting=args.weighting)
    summary = run(cfg, args.seed, Runtime(device=args.device, progress=not args.no_progress), profile=args.profile)
    keys = ["run_id", "method", "seed", "metrics", "delta_t", "delta_p", "sparsity", "params", "bytes",
            "dense_run_id", "train_seconds", "device"]
    if args.json:
        out = {k: summary[k] for k in keys}
        # achieved sparsity per layer too (the summary keeps the counts under `sparsity_layers`)
        out["sparsity"] = {**summary["sparsity"],
                           "layers": {n: v["sparsity"] for n, v in summary["sparsity_layers"].items()}}
        print(json.dumps(json_safe(out), allow_nan=False))
    else:
        print(f"{summary['run_id']} seed {summary['seed']}: delta_t {summary['delta_t']['mean']}, "
              f"sparsity {summary['sparsity']['overall']:.4f}")
        for task, ms in summary["metrics"].items():
            print(f"  {task:7s} " + "  ".join(f"{m}={v:.4g}" for m, v in ms.items()))
    return 0


def cmd_generate(args: argparse.Namespace) -> int:
    from .profiles import generator_spec
    from .runner import ensure_data

    spec = generator_spec(args.profile)
    if spec is None:
        raise ValueError(f"profile {args.profile!r} uses the real NYU-v2 release, which cannot be generated; "
                         f"see data/README.md")
    t = time.perf_counter()
    root = ensure_data(spec, progress=not args.no_progress)
    print(f"{root} ({spec.n_train} train + {spec.n_test} test scenes at {spec.height}x{spec.width}, "
          f"{time.perf_counter() - t:.1f} s)")
    return 0


def cmd_study(args: argparse.Namespace) -> int:
    from .book import build_study

    return build_study(profile=args.profile, only=args.only, book_only=args.book_only)


def build_parser() -> argparse.ArgumentParser:
    from .pruning import STRATEGIES
    from .weighting import WEIGHTINGS

    parser = argparse.ArgumentParser(prog="python -m mtlprune", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("run", help="train (or load from the cache) one run and print its summary")
    p.add_argument("--profile", choices=PROFILES, default="quick")
    p.add_argument("--method", choices=STRATEGIES.names(), default="dense")
    p.add_argument("--sparsity", type=float, default=0.0, help="requested overall sparsity in (0, 1)")
    p.add_argument("--weighting", choices=WEIGHTINGS.names(), default=None)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                   help="override a config field, e.g. --set train.iterations=200 --set model.backbone=mobilenetv2")
    p.add_argument("--device", choices=["auto", "cpu", "cuda"], default="auto")
    p.add_argument("--json", action="store_true", help="print the summary as one JSON object on the last line")
    p.add_argument("--no-progress", action="store_true")
    p.set_defaults(func=cmd_run)

    g = sub.add_parser("generate", help="write the generated NYU-like dataset of a profile")
    g.add_argument("--profile", choices=PROFILES, default="quick")
    g.add_argument("--no-progress", action="store_true")
    g.set_defaults(func=cmd_generate)

    s = sub.add_parser("study", help="execute the notebooks of notebooks/manifest.yml with papermill and build the book")
    s.add_argument("--profile", choices=PROFILES, default="quick")
    s.add_argument("--only", action="append", default=None, help="run only these notebooks (stem), repeatable")
    s.add_argument("--book-only", action="store_true", help="rebuild the book from the executed notebooks")
    s.set_defaults(func=cmd_study)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return args.func(args)
    except (ValueError, FileNotFoundError, FloatingPointError, DataError, CacheError) as exc:
        # One clear line instead of a traceback for bad input, missing data and corrupt caches; anything else is a bug
        # and keeps its traceback.
        print(f"error: {exc}", file=sys.stderr)
        return 2
