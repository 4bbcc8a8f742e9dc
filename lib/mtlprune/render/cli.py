"""Command line: `python -m mtlprune {run, mdl, generate, generate-domains, study}`; argparse lives here and only here."""

from __future__ import annotations

import argparse
import errno
import json
import os
import sys
import time
from functools import partial
from typing import Any

import yaml

from ..core.data.datasets import DATASETS, dataset_spec
from ..core.data.loading import ensure_data
from ..core.errors import CacheError, DataError, GridError
from ..core.mdl.methods import MDL_METHODS
from ..core.mdl.sharing import SHARING
from ..core.pruning import STRATEGIES
from ..core.pruning.native import KernelUnavailable
from ..core.runtime import Runtime
from ..core.weighting import WEIGHTINGS
from ..runs.bundles import export_bundle, import_bundle
from ..runs.executors import ensure_ray, executor_names, get_executor
from ..runs.multidomain import ensure_domains, run_mdl
from ..runs.multitask import run
from ..runs.store import json_safe
from ..study.design import MDL_BUDGETS
from ..study.profiles import PROFILES, generator_spec, make_config, make_mdl_config
from .book import build_study, show_plan


def _parse_set(items: list[str], flag: str = "--set") -> dict[str, Any]:
    out = {}
    for item in items:
        if "=" not in item:
            example = "train.iterations=100" if flag == "--set" else "mechanism=faithful"
            raise ValueError(f"{flag} expects KEY=VALUE (e.g. {example}), got {item!r}")
        key, value = item.split("=", 1)
        try:
            out[key] = yaml.safe_load(value)
        except yaml.YAMLError as exc:
            first = str(exc).strip().splitlines()[0]
            raise ValueError(f"{flag} {item!r}: the value is not valid YAML ({first}); quote it or fix it, e.g. "
                             f"{key}=[1, 2]") from None
    return out


def cmd_run(args: argparse.Namespace) -> int:
    overrides = _parse_set(args.set)
    if args.dataset is not None:
        overrides = {"data.dataset": args.dataset, **overrides}
    cfg = make_config(args.profile, args.method, args.sparsity, overrides=overrides,
                      method_params=_parse_set(args.param, "--param") or None, weighting=args.weighting)
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


def _generate(profile: str, spec, ensure, release: str, describe, progress: bool) -> int:
    """Write a profile's generated dataset (`spec`), or say that the profile reads a real release instead."""
    if spec is None:
        raise ValueError(f"profile {profile!r} uses the real {release} release, which cannot be generated; "
                         f"see data/README.md")
    t = time.perf_counter()
    root = ensure(spec, progress=progress)
    print(f"{root} ({describe(spec)}, {time.perf_counter() - t:.1f} s)")
    return 0


def cmd_generate(args: argparse.Namespace) -> int:
    return _generate(args.profile, generator_spec(args.profile, args.dataset),
                     partial(ensure_data, dataset=args.dataset), dataset_spec(args.dataset).title,
                     lambda s: f"{s.n_train} train + {s.n_test} test views at {s.height}x{s.width}",
                     not args.no_progress)


def cmd_mdl(args: argparse.Namespace) -> int:
    cfg = make_mdl_config(args.profile, args.method, args.budget, args.sharing, overrides=_parse_set(args.set))
    summary = run_mdl(cfg, args.seed, progress=not args.no_progress)
    keys = ["run_id", "method", "budget", "sharing", "seed", "accuracy", "mean_accuracy", "params_ratio",
            "macs_ratio", "macs_ratio_per_domain", "bytes_ratio", "latency_ratio", "latency_ms", "usage", "union",
            "intersection", "jaccard", "train_seconds"]
    if args.json:
        print(json.dumps(json_safe({k: summary.get(k) for k in keys}), allow_nan=False))
    else:
        print(f"{summary['run_id']} seed {summary['seed']}: mean accuracy {summary['mean_accuracy']:.2f} %, params "
              f"x{summary['params_ratio']:.3f}, MACs x{summary['macs_ratio']:.3f}, latency x{summary['latency_ratio']:.2f}")
        for domain, acc in summary["accuracy"].items():
            print(f"  {domain:10s} {acc:6.2f} %")
    return 0


def cmd_generate_domains(args: argparse.Namespace) -> int:
    data = make_mdl_config(args.profile, "frozen", 1.0).source.data
    if data.synthetic is None and data.packaged is None:
        raise ValueError(f"profile {args.profile!r} uses the real Visual Decathlon release, which cannot be generated; "
                         f"see data/README.md")
    t = time.perf_counter()
    root = ensure_domains(data, progress=not args.no_progress)
    what = (f"{len(data.domains)} generated domains at {data.synthetic.size}x{data.synthetic.size}"
            if data.synthetic is not None else f"{len(data.domains)} real domains converted from installed packages "
                                              f"at {data.packaged.size}x{data.packaged.size}")
    print(f"{root} ({what}, {time.perf_counter() - t:.1f} s)")
    return 0


def cmd_study(args: argparse.Namespace) -> int:
    if args.workers is not None:
        os.environ["MTLPRUNE_WORKERS"] = str(args.workers)
    if args.executor:
        os.environ["MTLPRUNE_EXECUTOR"] = args.executor  # the notebooks' kernels inherit it
    get_executor()  # a bad name, a bad worker count or a missing Ray fails here, before any notebook runs
    if os.environ.get("MTLPRUNE_EXECUTOR") == "ray":  # one cluster for every notebook of the study
        os.environ["MTLPRUNE_RAY_ADDRESS"] = ensure_ray()
    if args.plan:
        return show_plan(args.profile, args.only)
    return build_study(profile=args.profile, only=args.only, book_only=args.book_only)


def cmd_bundle(args: argparse.Namespace) -> int:
    if args.action == "export":
        if not args.profile:
            raise ValueError("bundle export needs --profile (smoke | quick | standard | full)")
        path = export_bundle(args.profile, args.path)
        print(f"{path} ({path.stat().st_size / 2 ** 20:.1f} MiB)")
    else:
        if not args.path:
            raise ValueError("bundle import needs the archive: python -m mtlprune bundle import PATH")
        counts = import_bundle(args.path, accept_version=args.accept_version)
        print(counts["provenance"])
        print(f"imported {counts['added']} runs ({counts['present']} already in the store)")
        if counts["kept"]:
            print(f"error: the store completed other results of {', '.join(counts['kept'])} while importing; the "
                  f"store's are kept (delete them and import again to take the bundle's)", file=sys.stderr)
            return 1
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m mtlprune", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("run", help="train (or load from the cache) one run and print its summary")
    p.add_argument("--profile", choices=PROFILES, default="quick")
    p.add_argument("--dataset", choices=DATASETS.names(), default=None,
                   help="a registered multi-task dataset (default: the profile's, nyuv2)")
    p.add_argument("--method", choices=STRATEGIES.names(), default="dense")
    p.add_argument("--sparsity", type=float, default=0.0, help="requested overall sparsity in (0, 1)")
    p.add_argument("--weighting", choices=WEIGHTINGS.names(), default=None)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                   help="override a config field, e.g. --set train.iterations=200 --set model.backbone=mobilenetv2")
    p.add_argument("--param", action="append", default=[], metavar="KEY=VALUE",
                   help="a pruning-method hyperparameter, e.g. --param mechanism=faithful --param init=-4 (adapmtl)")
    p.add_argument("--device", choices=["auto", "cpu", "cuda"], default="auto")
    p.add_argument("--json", action="store_true", help="print the summary as one JSON object on the last line")
    p.add_argument("--no-progress", action="store_true")
    p.set_defaults(func=cmd_run)

    g = sub.add_parser("generate", help="write the generated dataset of a profile (NYU-v2 rooms or Taskonomy "
                                        "buildings, in the release's layout)")
    g.add_argument("--profile", choices=PROFILES, default="quick")
    g.add_argument("--dataset", choices=DATASETS.names(), default="nyuv2",
                   help="a registered multi-task dataset (default nyuv2)")
    g.add_argument("--no-progress", action="store_true")
    g.set_defaults(func=cmd_generate)

    m = sub.add_parser("mdl", help="train (or load) one multi-domain run (budget-aware pruning and its baselines)")
    m.add_argument("--profile", choices=PROFILES, default="quick")
    m.add_argument("--method", choices=MDL_METHODS.names(), default="budget_aware")
    m.add_argument("--budget", type=float, default=0.5, help=f"share of switchable weights per domain (study: {MDL_BUDGETS['standard']})")
    m.add_argument("--sharing", choices=SHARING.names(), default=None, help="default: union for budget_aware")
    m.add_argument("--seed", type=int, default=0)
    m.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                   help="override an MDLConfig field, e.g. --set method.granularity=slice --set train.iterations=200")
    m.add_argument("--json", action="store_true", help="print the summary as one JSON object on the last line")
    m.add_argument("--no-progress", action="store_true")
    m.set_defaults(func=cmd_mdl)

    gd = sub.add_parser("generate-domains", help="write the profile's multi-domain benchmark in the Decathlon layout "
                                                 "(generated, or converted from installed packages)")
    gd.add_argument("--profile", choices=PROFILES, default="quick")
    gd.add_argument("--no-progress", action="store_true")
    gd.set_defaults(func=cmd_generate_domains)

    s = sub.add_parser("study", help="execute the notebooks of notebooks/manifest.yml with papermill and build the book")
    s.add_argument("--profile", choices=PROFILES, default="quick")
    s.add_argument("--only", action="append", default=None, help="run only these notebooks (stem), repeatable")
    s.add_argument("--book-only", action="store_true", help="rebuild the book from the executed notebooks")
    s.add_argument("--plan", action="store_true",
                   help="train nothing: list per page the runs cached and to train, and estimate the wall time on "
                        "this machine (measures a few steps of each kind of run once)")
    s.add_argument("--executor", choices=executor_names(), default=None,
                   help="where the runs of every grid are computed (default: $MTLPRUNE_EXECUTOR, else local)")
    s.add_argument("--workers", type=int, default=None, help="processes executor: worker processes")
    s.set_defaults(func=cmd_study)

    b = sub.add_parser("bundle", help="export the completed runs of a profile to one archive, or import one")
    b.add_argument("action", choices=["export", "import"])
    b.add_argument("path", nargs="?", default=None, help="export: the archive to write (default "
                   "data/bundles/<profile>.tar.gz); import: the archive to read")
    b.add_argument("--profile", choices=PROFILES, default=None)
    b.add_argument("--accept-version", action="store_true",
                   help="import a bundle made by another library version (its runs must still hash to their ids)")
    b.set_defaults(func=cmd_bundle)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return args.func(args)
    except (ValueError, FloatingPointError, DataError, CacheError, GridError, KernelUnavailable) as exc:
        # One clear line instead of a traceback for bad input, missing data and corrupt caches; anything else is a bug
        # and keeps its traceback.
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except OSError as exc:  # a file that cannot be written or read: name it and the fix
        print(f"error: {os_error(exc)}", file=sys.stderr)
        return 2


def os_error(exc: OSError) -> str:
    """An operating-system error in words, with the file and the fix."""
    where = f" {exc.filename}" if exc.filename else ""
    if isinstance(exc, PermissionError):
        return (f"permission denied:{where}. Make it writable, or point MTLPRUNE_RUNS / MTLPRUNE_DATA at a writable "
                f"folder")
    if exc.errno in (errno.ENOSPC, errno.EFBIG, errno.EDQUOT):
        return (f"cannot write{where}: {exc.strerror}. Free disk space (or raise the file-size limit) and run the "
                f"same command again: finished runs are kept and an interrupted one resumes from its checkpoint")
    if isinstance(exc, (NotADirectoryError, FileExistsError)):
        return f"{exc.strerror}:{where}: a file stands where a folder is needed (check MTLPRUNE_DATA / MTLPRUNE_RUNS)"
    return str(exc)
