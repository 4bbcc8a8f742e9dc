"""Multi-domain runs: data on first use, the cached source backbone, training, removal, costs, and the atomic
`summary.json` that marks a run complete (the same store and rules as the multi-task runs)::

    data/runs/mdlsource-<hash>/seed_<n>/{model.pt, summary.json}      the pretrained backbone
    data/runs/mdl-<method>-<hash>/seed_<n>/{model.pt, summary.json}   a method run (model.pt: the deployed model)

Runs take seconds to a minute in `quick`, so they restart rather than resume when interrupted (no checkpoint); a
summary is still only ever written complete.
"""

from __future__ import annotations

import functools
import time
from pathlib import Path
from typing import Any

import torch

from .. import paths
from ..config import canonical, to_dict
from ..data.domains import DomainsSpec, generate, load_domain
from ..locks import file_lock, make_once
from ..runner import check_finite, load_state, read_summary, rerun_fix, write_failure, write_json_atomic
from .config import MDLConfig, SourceConfig
from .costs import deployed_state, disk_bytes, latency_ratio, macs, parameters
from .methods import MDL_METHODS
from .model import MultiDomainResNet, remove_unused, usage_masks
from .sharing import weighted
from .train import accuracy, from_source, pretrain_source, train_joint


def domains_root(spec: DomainsSpec | None) -> Path:
    return paths.generated_root() / spec.dirname() if spec is not None else paths.decathlon_root()


def ensure_domains(spec: DomainsSpec | None, progress: bool = True) -> Path:
    root = domains_root(spec)
    if spec is not None:
        make_once(root, lambda r: generate(spec, r, progress=progress))
    return root


@functools.lru_cache(maxsize=64)
def _load(root: str, domain: str, split: str, size: int) -> tuple[torch.Tensor, torch.Tensor, tuple[str, ...]]:
    x, y, names = load_domain(Path(root), domain, split, size)
    return x, y, tuple(names)


def load(cfg: SourceConfig, domain: str, split: str, progress: bool = True):
    root = ensure_domains(cfg.data.synthetic, progress)
    if split == "test":
        split = cfg.data.test_split
    return _load(str(root), domain, split, cfg.data.size)


def source_model(cfg: SourceConfig, progress: bool = True) -> MultiDomainResNet:
    """The pretrained single-domain backbone of `cfg` (trained once, at `cfg.seed`, then cached)."""
    seed = cfg.seed
    out = paths.seed_dir(cfg.run_id, seed)
    x, y, names = load(cfg, cfg.data.source, "source" if cfg.data.synthetic is not None else "train", progress)
    if not (out / "summary.json").exists():
        with file_lock(out / ".lock", str(out)):
            if not (out / "summary.json").exists():
                t = time.time()
                model = pretrain_source(cfg, (x, y), len(names), seed, progress)
                bad = [n for n, p in model.state_dict().items() if p.is_floating_point() and not torch.isfinite(p).all()]
                if bad:  # a NaN source would poison every multi-domain run that starts from it
                    exc = FloatingPointError(f"source pretraining produced non-finite weights ({bad[:3]}); it is not "
                                             f"cached. Fix: lower source.lr (--set source.lr=...)")
                    write_failure(out, cfg.run_id, seed, exc)
                    raise exc
                torch.save(model.state_dict(), out / "model.pt")
                write_json_atomic(paths.run_dir(cfg.run_id) / "config.json",
                                  {"run_id": cfg.run_id, "canonical": canonical(cfg), "full": to_dict(cfg)})
                write_json_atomic(out / "summary.json", {"run_id": cfg.run_id, "seed": seed,
                                                         "train_seconds": time.time() - t})
    read_summary(out / "summary.json", ("run_id", "seed", "train_seconds"), {"run_id": cfg.run_id, "seed": seed})
    model = MultiDomainResNet([len(names)], cfg.model.widths, cfg.model.blocks)
    model.load_state_dict(load_state(out / "model.pt", "the source network's weights", rerun_fix(out)))
    return model.eval()


def run_mdl(cfg: MDLConfig, seed: int = 0, progress: bool = True) -> dict[str, Any]:
    """Train (or load) one multi-domain run and return its summary."""
    if not isinstance(seed, int) or isinstance(seed, bool) or seed < 0:
        raise ValueError(f"seed must be a non-negative integer, got {seed!r}")
    out = paths.seed_dir(cfg.run_id, seed)
    if (out / "summary.json").exists():
        return _checked(cfg, seed)
    for domain in cfg.source.data.domains:  # every domain's data is checked before the source network pretrains
        for split in ("train", "val", "test"):
            load(cfg.source, domain, split, progress)
    source = source_model(cfg.source, progress)
    with file_lock(out / ".lock", str(out)):
        if (out / "summary.json").exists():
            return _checked(cfg, seed)
        try:
            summary = _train(cfg, seed, progress, source, out)
        except FloatingPointError as exc:
            write_failure(out, cfg.run_id, seed, exc)
            raise
        (out / "failure.json").unlink(missing_ok=True)
        return summary


MDL_SUMMARY_KEYS = ("run_id", "kind", "method", "budget", "sharing", "seed", "domains", "accuracy", "val_accuracy",
                    "mean_accuracy", "params_ratio", "macs_ratio", "bytes_ratio", "latency_ratio", "config")


def _checked(cfg: MDLConfig, seed: int) -> dict[str, Any]:
    return read_summary(paths.seed_dir(cfg.run_id, seed) / "summary.json", MDL_SUMMARY_KEYS,
                        {"run_id": cfg.run_id, "seed": seed})


def _train(cfg: MDLConfig, seed: int, progress: bool, source: MultiDomainResNet, out: Path) -> dict[str, Any]:
    write_json_atomic(paths.run_dir(cfg.run_id) / "config.json",
                      {"run_id": cfg.run_id, "canonical": canonical(cfg), "full": to_dict(cfg)})
    names = list(cfg.source.data.domains)
    splits = {s: [load(cfg.source, d, s, progress) for d in names] for s in ("train", "val", "test")}
    classes = [len(c) for _, _, c in splits["train"]]
    data = {s: [(x, y) for x, y, _ in v] for s, v in splits.items()}
    method = MDL_METHODS.get(cfg.method.name)(cfg)
    size = cfg.source.data.size
    reference = MultiDomainResNet([10], cfg.source.model.widths, cfg.source.model.blocks)
    ref_params, ref_macs = parameters(reference), macs(reference, size)
    ref_bytes = disk_bytes(deployed_state(reference))
    t0 = time.time()
    history: list[dict[str, Any]] = []
    if method.separate_domains:  # one network per domain, each trained alone
        models = []
        for d, name in enumerate(names):
            torch.manual_seed(seed * 1000 + d)
            m = from_source(source, [classes[d]], cfg, None)
            history += [{**h, "domain": name} for h in
                        train_joint(m, method, [data["train"][d]], [0], cfg, seed * 1000 + d, progress,
                                    f"{cfg.kind} {name}")]
            models.append(m)
        acc = {n: accuracy(m, data["test"][d], 0) for d, (n, m) in enumerate(zip(names, models))}
        val = {n: accuracy(m, data["val"][d], 0) for d, (n, m) in enumerate(zip(names, models))}
        deployed, per_domain_macs = models, [macs(m, size) for m in models]
        params_total = sum(parameters(m) for m in models)
        bytes_total = sum(disk_bytes(deployed_state(m)) for m in models)
        lat = latency_ratio(models[0], reference, size)
        extra: dict[str, Any] = {}
    else:
        torch.manual_seed(seed)
        model = from_source(source, classes, cfg, method.granularity)
        history = train_joint(model, method, data["train"], list(range(len(names))), cfg, seed, progress, cfg.kind)
        acc = {n: accuracy(model, data["test"][d], d) for d, n in enumerate(names)}
        val = {n: accuracy(model, data["val"][d], d) for d, n in enumerate(names)}
        pruned = remove_unused(model) if model.switched() else model
        per_domain_macs = [macs(pruned, size, d) for d in range(len(names))]
        params_total = parameters(pruned)
        bytes_total = disk_bytes(deployed_state(pruned))
        lat = latency_ratio(pruned, reference, size)
        extra = _switch_report(model, names, size, ref_macs) if model.switched() else {}
        torch.save(deployed_state(pruned), out / "model.pt")
        deployed = [pruned]
    summary = {
        "run_id": cfg.run_id, "kind": cfg.kind, "method": cfg.method.name, "budget": cfg.method.budget,
        "sharing": cfg.method.sharing, "granularity": cfg.method.granularity,
        "learnable_weight": cfg.method.learnable_weight, "seed": seed, "domains": names,
        "accuracy": acc, "val_accuracy": val, "mean_accuracy": sum(acc.values()) / len(acc),
        "params_ratio": params_total / ref_params, "macs_ratio": max(per_domain_macs) / ref_macs,
        "macs_ratio_per_domain": {n: m / ref_macs for n, m in zip(names, per_domain_macs)},
        "bytes_ratio": bytes_total / ref_bytes, "latency_ms": {"model": lat[0], "single_backbone": lat[1]},
        "latency_ratio": lat[2],
        "reference": {"params": ref_params, "macs": ref_macs, "bytes": ref_bytes},
        "params": params_total, "models_deployed": len(deployed), "method_state": getattr(method, "state",
                                                                                         lambda: {})(),
        "train_seconds": time.time() - t0, "history": history, "config": canonical(cfg), **extra,
    }
    check_finite("multi-domain results", {"accuracy": acc, "val_accuracy": val},
                 "lower train.lr / train.switch_lr (--set train.lr=...)")
    write_json_atomic(out / "summary.json", summary)  # last: marks the run complete
    return _checked(cfg, seed)


@torch.no_grad()
def _switch_report(model: MultiDomainResNet, names: list[str], size: int, ref_macs: int) -> dict[str, Any]:
    """Usage per domain (weighted share of switchable weights), union / intersection / Jaccard, each domain's own
    MACs (its switches only), and the 0/1 filter usage per block and domain (for heatmaps)."""
    masks = usage_masks(model)
    usage, union, inter = weighted(masks, model.per_filter_params())
    own = {n: macs(remove_unused(model, [d]), size, d) / ref_macs for d, n in enumerate(names)}
    return {"usage": {n: float(u) for n, u in zip(names, usage)}, "union": float(union),
            "intersection": float(inter), "jaccard": float(inter / max(float(union), 1e-12)),
            "own_macs_ratio": own,
            "filter_usage": {f"block {i}": {n: m[d].int().tolist() for d, n in enumerate(names)}
                             for i, m in enumerate(masks)}}
