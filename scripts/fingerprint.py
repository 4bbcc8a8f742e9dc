"""Fingerprint of a smoke grid: every run id and a hash of every number it produced, to show that a refactor changes
neither ids nor numbers (bit for bit).

It trains, through the command line only (`python -m mtlprune run | mdl`, so it runs against any revision of the
library), every multi-task method of the catalogue, the loss weightings, two Tiny-Taskonomy runs and every multi-domain
method in the smoke profile, in a fresh data folder and run store, then prints one JSON object: for every run folder of
the store its id, seed and the SHA-256 of its summary (without what measures time), of its history and of every
tensor of its model files.

    python scripts/fingerprint.py --out /tmp/after.json [--lib OTHER_CHECKOUT/lib]
    python scripts/fingerprint.py --compare /tmp/before.json /tmp/after.json
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

# what a summary records about time and place, not about the numbers the run computed
VOLATILE = {"train_seconds", "wall_seconds_this_process", "finished", "env", "git_commit", "latency_ms",
            "latency_ratio", "latency_ratio_iqr", "profile", "threads"}

MULTI_TASK = [("dense", 0.0), ("dense_finetune", 0.0), ("random", 0.9), ("magnitude_global", 0.9),
              ("magnitude_layer", 0.9), ("gradual_magnitude", 0.9), ("snip", 0.9), ("lth", 0.9), ("imp", 0.9),
              ("str", 0.9), ("disparse_static", 0.9), ("disparse_pt", 0.9), ("disparse_dynamic", 0.9),
              ("adapmtl", 0.9), ("adapmtl_global_threshold", 0.9), ("adapmtl_layer_thresholds", 0.9)]
EXTRA = [["--method", "magnitude_component", "--sparsity", "0.9", "--param", "backbone=0.8", "--param", "seg=0.95",
          "--param", "depth=0.95", "--param", "normal=0.95"],
         ["--method", "adapmtl", "--sparsity", "0.9", "--weighting", "uncertainty"],
         ["--method", "adapmtl", "--sparsity", "0.9", "--weighting", "dwa"],
         ["--method", "adapmtl", "--sparsity", "0.9", "--param", "mechanism=faithful"],
         ["--dataset", "taskonomy", "--method", "dense"],
         ["--dataset", "taskonomy", "--method", "adapmtl", "--sparsity", "0.9"],
         ["--dataset", "taskonomy", "--method", "magnitude_global", "--sparsity", "0.9"]]
MULTI_DOMAIN = [["--method", "individual", "--budget", "1.0"], ["--method", "frozen", "--budget", "1.0"],
                ["--method", "ba2", "--budget", "0.5"], ["--method", "budget_aware", "--budget", "0.5"],
                ["--method", "budget_aware", "--budget", "0.5", "--set", "method.granularity=slice"]]


def _sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()[:16]


def _tensors(path: Path) -> str:
    import torch

    obj = torch.load(path, map_location="cpu", weights_only=True)
    h = hashlib.sha256()
    for key in sorted(obj):
        h.update(key.encode())
        h.update(obj[key].contiguous().view(-1).view(torch.uint8).numpy().tobytes())
    return h.hexdigest()[:16]


def fingerprint(runs: Path) -> dict[str, dict[str, str]]:
    out = {}
    for summary in sorted(runs.glob("*/seed_*/summary.json")):
        folder = summary.parent
        s = json.loads(summary.read_text())
        numbers = {k: v for k, v in s.items() if k not in VOLATILE}
        entry = {"summary": _sha(json.dumps(numbers, sort_keys=True).encode())}
        if (folder / "history.jsonl").exists():
            entry["history"] = _sha((folder / "history.jsonl").read_bytes())
        for model in sorted(folder.glob("model*.pt")):
            if model.name != "model_sparse.pt":
                entry[model.name] = _tensors(model)
        out[f"{folder.parent.name}/{folder.name}"] = entry
    return out


def train(lib: str | None) -> dict[str, dict[str, str]]:
    home = Path(tempfile.mkdtemp(prefix="fingerprint-"))
    env = {**os.environ, "MTLPRUNE_DATA": str(home / "data"), "MTLPRUNE_RUNS": str(home / "runs"),
           "MTLPRUNE_NATIVE": str(home / "native"), "MTLPRUNE_NYUV2": str(home / "none")}
    if lib:
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [lib, env.get("PYTHONPATH")]))
    commands = [["run", "--method", m, *(["--sparsity", str(s)] if s else [])] for m, s in MULTI_TASK]
    commands += [["run", *extra] for extra in EXTRA] + [["mdl", *extra] for extra in MULTI_DOMAIN]
    for i, cmd in enumerate(commands, 1):
        full = [sys.executable, "-m", "mtlprune", *cmd[:1], "--profile", "smoke", *cmd[1:], "--no-progress",
                "--json"]
        print(f"[{i}/{len(commands)}] {' '.join(cmd)}", file=sys.stderr, flush=True)
        proc = subprocess.run(full, env=env, capture_output=True, text=True)
        if proc.returncode:
            raise SystemExit(f"{' '.join(cmd)} failed:\n{proc.stderr[-2000:]}")
    return fingerprint(home / "runs")


def compare(a: dict, b: dict) -> int:
    only_a, only_b = sorted(set(a) - set(b)), sorted(set(b) - set(a))
    differ = sorted(k for k in set(a) & set(b) if a[k] != b[k])
    print(f"{len(set(a) & set(b))} run folders in both, {len(only_a)} only before, {len(only_b)} only after, "
          f"{len(differ)} differ")
    for k in only_a:
        print("  only before:", k)
    for k in only_b:
        print("  only after: ", k)
    for k in differ:
        print("  differ:", k, {f: (a[k].get(f), b[k].get(f)) for f in set(a[k]) | set(b[k]) if a[k].get(f) != b[k].get(f)})
    identical = not (only_a or only_b or differ)
    print("identical: ids and numbers" if identical else "NOT identical")
    return 0 if identical else 1


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, help="write the fingerprint here")
    parser.add_argument("--lib", default=None, help="the lib/ folder of another checkout to fingerprint instead")
    parser.add_argument("--compare", nargs=2, type=Path, metavar=("BEFORE", "AFTER"))
    args = parser.parse_args()
    if args.compare:
        return compare(*(json.loads(p.read_text()) for p in args.compare))
    result = train(args.lib)
    text = json.dumps(result, indent=1, sort_keys=True)
    if args.out:
        args.out.write_text(text)
    print(f"{len(result)} run folders fingerprinted", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
