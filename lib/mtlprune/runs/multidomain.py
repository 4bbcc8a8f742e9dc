"""Multi-domain runs in the one run store (`store`: cache, lock, failure record, atomic summary, `history.jsonl`):
data on first use, the cached source backbone, training (resumable), removal, costs::

    data/runs/mdlsource-<hash>/seed_<n>/{model.pt, summary.json}           the pretrained backbone
    data/runs/mdl-<method>-<hash>/seed_<n>/{model_<k>.pt, checkpoint_<k>.pt, history.jsonl, summary.json}

`model_<k>.pt` is the deployed network k (after removal); a method trains one network for every domain, or one per
domain (`MDLMethod.networks`). A killed run resumes from its checkpoints.
"""

from __future__ import annotations

import functools
import time
from pathlib import Path
from typing import Any

import torch

from ..core import catalogue, paths
from ..core.config import MDLConfig, MDLData, SourceConfig, canonical
from ..core.data.domains import generate, load_domain
from ..core.data.packaged import convert
from ..core.identity import run_id
from ..core.locks import make_once
from ..core.mdl.costs import deployed_state, disk_bytes, latency_ratio, macs, parameters
from ..core.mdl.methods import MDL_METHODS
from ..core.mdl.model import MultiDomainResNet, remove_unused, usage_masks
from ..core.mdl.sharing import weighted
from ..core.mdl.train import VAL_POINTS, accuracy, from_source, pretrain_source, train_joint
from ..core.runtime import pinned_threads
from ..core.validate import validate
from . import store
from .store import check_finite, load_state, rerun_fix

SUMMARY_KEYS = ("run_id", "kind", "method", "budget", "sharing", "seed", "domains", "accuracy", "val_accuracy",
                "mean_accuracy", "params_ratio", "macs_ratio", "bytes_ratio", "latency_ratio", "latency_ratio_iqr",
                "config")
SOURCE_KEYS = ("run_id", "seed", "train_seconds")


def domains_root(data: MDLData) -> Path:
    """Where a multi-domain benchmark lives: the generated or the packaged one under the generated data, or the
    Visual Decathlon release."""
    if data.synthetic is not None:
        return paths.generated_root() / data.synthetic.dirname()
    if data.packaged is not None:
        return paths.generated_root() / data.packaged.dirname()
    return paths.decathlon_root()


def ensure_domains(data: MDLData, progress: bool = True) -> Path:
    """The benchmark's root, written first (generated, or converted from the installed packages) when it is not."""
    root = domains_root(data)
    if data.synthetic is not None:
        make_once(root, lambda r: generate(data.synthetic, r, progress=progress))
    elif data.packaged is not None:
        make_once(root, lambda r: convert(data.packaged, r, progress=progress))
    return root


@functools.lru_cache(maxsize=64)
def _load(root: str, domain: str, split: str, size: int) -> tuple[torch.Tensor, torch.Tensor, tuple[str, ...]]:
    x, y, names = load_domain(Path(root), domain, split, size)
    return x, y, tuple(names)


def load(cfg: SourceConfig, domain: str, split: str, progress: bool = True):
    root = ensure_domains(cfg.data, progress)
    if split == "test":
        split = cfg.data.test_split
    return _load(str(root), domain, split, cfg.data.size)


def _source_split(cfg: SourceConfig, progress: bool):
    """The split the backbone pretrains on: the generated benchmark's `source` split, the real release's train."""
    own = cfg.data.synthetic is not None or cfg.data.packaged is not None  # a benchmark with a `source` split
    return load(cfg, cfg.data.source, "source" if own else "train", progress)


def run_source(cfg: SourceConfig, progress: bool = True, profile: str | None = None) -> dict[str, Any]:
    """Pretrain (or load) the single-domain backbone of `cfg`, trained once at `cfg.seed`; returns its summary."""
    validate(cfg)
    x, y, names = _source_split(cfg, progress)

    def train(out: Path) -> dict[str, Any]:
        store.write_config(run_id(cfg), cfg)
        t = time.time()
        vx, vy, _ = load(cfg, cfg.data.source, "val", progress)
        with pinned_threads(cfg.threads):
            model, history = pretrain_source(cfg, (x, y), len(names), cfg.seed, progress, (vx, vy),
                                             ckpt=out / "checkpoint.pt")
        store.write_history(out, history)
        bad = [n for n, p in model.state_dict().items() if p.is_floating_point() and not torch.isfinite(p).all()]
        if bad:  # a NaN source would poison every multi-domain run that starts from it
            raise FloatingPointError(f"source pretraining produced non-finite weights ({bad[:3]}); it is not "
                                     f"cached. Fix: lower source.lr (--set source.lr=...)")
        torch.save(model.state_dict(), out / paths.MODEL)
        return {"run_id": run_id(cfg), "seed": cfg.seed, "train_seconds": time.time() - t, "profile": profile,
                "kind": "mdlsource", "threads": cfg.threads or torch.get_num_threads(),
                "git_commit": store.git_commit()}

    return store.execute(run_id(cfg), cfg.seed, SOURCE_KEYS, train)


def source_model(cfg: SourceConfig, progress: bool = True, profile: str | None = None) -> MultiDomainResNet:
    """The pretrained single-domain backbone of `cfg` (`run_source`: trained once, then read from the store)."""
    run_source(cfg, progress, profile)
    classes = len(_source_split(cfg, progress)[2])
    out = paths.seed_dir(run_id(cfg), cfg.seed)
    model = MultiDomainResNet([classes], cfg.model.widths, cfg.model.blocks)
    model.load_state_dict(load_state(out / paths.MODEL, "the source network's weights", rerun_fix(out)))
    return model.eval()


def run_mdl(cfg: MDLConfig, seed: int = 0, progress: bool = True, profile: str | None = None) -> dict[str, Any]:
    """Train (or load) one multi-domain run and return its summary."""
    validate(cfg)
    store.check_seed(seed)  # before the dense reference / the data and source it needs
    if store.is_complete(run_id(cfg), seed):
        return store.cached(run_id(cfg), seed, SUMMARY_KEYS)
    for domain in cfg.source.data.domains:  # every domain's data is checked before the source network pretrains
        for split in ("train", "val", "test"):
            load(cfg.source, domain, split, progress)
    source = source_model(cfg.source, progress, profile)

    def train(out: Path) -> dict[str, Any]:
        with pinned_threads(cfg.train.threads):
            return {**_train(cfg, seed, progress, source, out), "profile": profile,
                    "threads": torch.get_num_threads()}

    return store.execute(run_id(cfg), seed, SUMMARY_KEYS, train)


def _train(cfg: MDLConfig, seed: int, progress: bool, source: MultiDomainResNet, out: Path) -> dict[str, Any]:
    store.write_config(run_id(cfg), cfg)
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
    acc, val, per_domain_macs = {}, {}, {}
    deployed: list[MultiDomainResNet] = []
    extra: dict[str, Any] = {}
    for k, (served, net_seed) in enumerate(method.networks(len(names), seed)):
        torch.manual_seed(net_seed)
        model = from_source(source, [classes[d] for d in served], cfg, method.granularity)
        tag = {"domain": names[served[0]]} if len(served) == 1 else {}
        desc = f"{cfg.kind} {names[served[0]]}" if len(served) == 1 else cfg.kind
        history += [{**h, **tag, "network": k}
                    for h in train_joint(model, method, [data["train"][d] for d in served],
                                         list(range(len(served))), cfg, net_seed, progress, desc,
                                         ckpt=out / f"checkpoint_{k}.pt", val=[data["val"][d] for d in served])]
        pruned = remove_unused(model) if model.switched() else model
        for i, d in enumerate(served):
            acc[names[d]] = accuracy(model, data["test"][d], i, memory_format=cfg.train.memory_format)
            val[names[d]] = accuracy(model, data["val"][d], i, memory_format=cfg.train.memory_format)
            per_domain_macs[names[d]] = macs(pruned, size, i)
        if model.switched():
            extra = _switch_report(model, names, size, ref_macs)
        torch.save(deployed_state(pruned), out / f"model_{k}.pt")
        deployed.append(pruned)
    check_finite("multi-domain results", {"accuracy": acc, "val_accuracy": val},
                 "lower train.lr / train.switch_lr (--set train.lr=...)")
    lat = latency_ratio(deployed[0], reference, size)
    store.write_history(out, history)
    return {
        "run_id": run_id(cfg), "kind": cfg.kind, "method": cfg.method.name, "budget": cfg.method.budget,
        "sharing": cfg.method.sharing, "granularity": cfg.method.granularity,
        "learnable_weight": cfg.method.learnable_weight, "seed": seed, "domains": names,
        "accuracy": acc, "val_accuracy": val, "mean_accuracy": sum(acc.values()) / len(acc),
        "params_ratio": sum(parameters(m) for m in deployed) / ref_params,
        "macs_ratio": max(per_domain_macs.values()) / ref_macs,
        "macs_ratio_per_domain": {n: m / ref_macs for n, m in per_domain_macs.items()},
        "bytes_ratio": sum(disk_bytes(deployed_state(m)) for m in deployed) / ref_bytes,
        "latency_ms": {"model": lat["model_ms"], "single_backbone": lat["single_backbone_ms"]},
        "latency_ratio": lat["ratio"], "latency_ratio_iqr": [lat["ratio_q1"], lat["ratio_q3"]],
        "reference": {"params": ref_params, "macs": ref_macs, "bytes": ref_bytes},
        "params": sum(parameters(m) for m in deployed), "models_deployed": len(deployed),
        "method_state": method.state_dict(), "train_seconds": time.time() - t0, "config": canonical(cfg),
        "git_commit": store.git_commit(), **extra,
    }


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


def log_row(cfg: MDLConfig, summary: dict[str, Any]) -> dict[str, Any]:
    """The run log's columns of a finished multi-domain run."""
    return {"method": catalogue.mdl_label(cfg.method), "budget": cfg.method.budget,
            "mean accuracy": summary["mean_accuracy"], "params ratio": summary["params_ratio"],
            "MACs ratio": summary["macs_ratio"]}


def source_row(cfg: SourceConfig, summary: dict[str, Any]) -> dict[str, Any]:
    """The run log's columns of a finished source pretraining."""
    return {"method": "source pretraining", "iterations": cfg.iterations}


def events(cfg: MDLConfig | SourceConfig) -> tuple[int, int]:
    """(validations, checkpoints) of each network one run of `cfg` trains (`runs.cost`): validation `VAL_POINTS`
    times and a checkpoint every tenth of the run, both at the last step too (`mdl.train`)."""
    n = cfg.iterations if isinstance(cfg, SourceConfig) else cfg.train.iterations

    def due(every: int) -> int:
        return n // every + (1 if n % every else 0)

    return due(max(1, n // VAL_POINTS)), due(max(1, n // 10))


def prepare(cfg: MDLConfig | SourceConfig) -> None:
    """What packed runs share, made once before they start: the generated domains."""
    ensure_domains((cfg.source if isinstance(cfg, MDLConfig) else cfg).data, progress=False)
