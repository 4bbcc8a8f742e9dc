"""What notebooks call: build and check configs from notebook parameters, run them over seeds, and summarise.

Notebooks declare parameters and call these functions; every check happens here, before any training starts, so a
bad parameter fails the notebook in its first cells with one clear message.
"""

from __future__ import annotations

import time
from typing import Any, Iterable

import pandas as pd
import torch

from . import paths
from .config import RunConfig
from .metrics import METRICS
from .models import build_model
from .profiles import PROFILES, SEEDS, make_config
from .results import load_history, load_summaries
from .runner import is_complete, run
from .train import Runtime

_SETTING_OF = {"backbone": "model.backbone", "iterations": "train.iterations", "batch_size": "train.batch_size",
               "lr": "train.lr"}


def default_seeds(profile: str, which: str = "all") -> list[int]:
    """The profile's seeds: `main` (every sparsity), `extra` (only at the seed sparsity) or `all`."""
    if profile not in PROFILES:
        raise ValueError(f"unknown profile {profile!r}; valid: {', '.join(PROFILES)}")
    main, extra = SEEDS[profile]
    return {"main": list(main), "extra": list(extra), "all": list(main) + list(extra)}[which]


def check_seeds(seeds: Any) -> list[int]:
    if isinstance(seeds, int) and not isinstance(seeds, bool):
        seeds = [seeds]
    if (not isinstance(seeds, (list, tuple)) or not seeds
            or not all(isinstance(s, int) and not isinstance(s, bool) and s >= 0 for s in seeds)):
        raise ValueError(f"seeds must be a non-empty list of non-negative integers, got {seeds!r}")
    if len(set(seeds)) != len(seeds):
        raise ValueError(f"seeds must not repeat, got {seeds!r}")
    return list(seeds)


def dense_config(profile: str, **settings: Any) -> RunConfig:
    """The dense reference of `profile`, with notebook-level settings (None = the profile's value)."""
    if profile not in PROFILES:
        raise ValueError(f"unknown profile {profile!r}; valid: {', '.join(PROFILES)}")
    unknown = set(settings) - set(_SETTING_OF)
    if unknown:
        raise ValueError(f"unknown setting(s) {sorted(unknown)}; valid: {sorted(_SETTING_OF)}")
    overrides = {_SETTING_OF[k]: v for k, v in settings.items() if v is not None}
    return make_config(profile, "dense", overrides=overrides)


def run_seeds(cfg: RunConfig, seeds: Iterable[int], profile: str | None = None,
              progress: bool = True) -> pd.DataFrame:
    """Run (or load) `cfg` for every seed; returns the run log (one row per run)."""
    return run_pairs([(cfg, s) for s in seeds], profile=profile, progress=progress)


def describe(cfg: RunConfig) -> pd.DataFrame:
    """Size of each component of the model `cfg` builds."""
    model = build_model(cfg.model, cfg.tasks)
    rows = [{"component": name, "parameters": sum(p.numel() for p in mod.parameters())}
            for name, mod in model.components().items()]
    return pd.DataFrame(rows).set_index("component")


def histories(cfg: RunConfig, seeds: Iterable[int]) -> pd.DataFrame:
    frames = [load_history(cfg.run_id, s).assign(seed=s) for s in seeds]
    return pd.concat(frames, ignore_index=True)


def metric_summary(cfg: RunConfig, seeds: Iterable[int]) -> pd.DataFrame:
    """Test metrics of `cfg`: mean and sd over seeds, one row per (task, metric), in the paper's order."""
    df = load_summaries([cfg.run_id])
    df = df[(df["split"] == "test") & df["seed"].isin(list(seeds))]
    order = [(t, m) for t, ms in METRICS.items() for m, _ in ms]
    g = df.groupby(["task", "metric"])["value"].agg(["mean", "std", "count"])
    g = g.reindex([o for o in order if o in g.index])
    higher = {(t, m): ("↑" if s > 0 else "↓") for t, ms in METRICS.items() for m, s in ms}
    g.insert(0, "better", [higher[i] for i in g.index])
    return g.rename(columns={"std": "sd", "count": "seeds"})


def load_trained_model(cfg: RunConfig, seed: int) -> torch.nn.Module:
    model = build_model(cfg.model, cfg.tasks)
    state = torch.load(paths.seed_dir(cfg.run_id, seed) / "model.pt", map_location="cpu")
    model.load_state_dict(state)
    return model.eval()


def glue_metrics(prefix: str, table: pd.DataFrame) -> None:
    """Glue every (task, metric) mean of a `metric_summary` table as `<prefix>_<task>_<metric>` for the prose."""
    from myst_nb import glue

    for (task, metric), row in table.iterrows():
        glue(f"{prefix}_{task}_{metric}", float(row["mean"]), display=False)


# ---------------------------------------------------------------------------------------------------------------------
# Pruning grids
# ---------------------------------------------------------------------------------------------------------------------
def check_sparsities(sparsities: Any) -> list[float]:
    if (not isinstance(sparsities, (list, tuple)) or not sparsities
            or not all(isinstance(s, (int, float)) and 0 < s < 1 for s in sparsities)):
        raise ValueError(f"sparsities must be a non-empty list of numbers in (0, 1), got {sparsities!r}")
    return [float(s) for s in sparsities]


def pruning_grid(profile: str, methods: Iterable[str], sparsities: Iterable[float], seeds: Iterable[int] | None,
                 extra_seeds: Iterable[int] | None = (), seed_sparsity: float | None = None,
                 method_params: dict[str, dict[str, Any]] | None = None,
                 overrides: dict[str, Any] | None = None) -> list[tuple[RunConfig, int]]:
    """(config, seed) pairs: every method at every sparsity for `seeds`, plus `extra_seeds` at `seed_sparsity`.
    Everything is validated before anything runs."""
    if profile not in PROFILES:
        raise ValueError(f"unknown profile {profile!r}; valid: {', '.join(PROFILES)}")
    if isinstance(methods, str) or not list(methods):
        raise ValueError(f"methods must be a non-empty list of method keys, got {methods!r}")
    methods = list(methods)
    sparsities = check_sparsities(list(sparsities))
    seeds = check_seeds(list(seeds) if seeds is not None else default_seeds(profile, "main"))
    extra = list(extra_seeds) if extra_seeds is not None else default_seeds(profile, "extra")
    if extra:
        extra = check_seeds(extra)
        if seed_sparsity not in sparsities:
            raise ValueError(f"seed_sparsity {seed_sparsity!r} must be one of sparsities {sparsities}")
    method_params = method_params or {}
    unknown = set(method_params) - set(methods)
    if unknown:
        raise ValueError(f"method_params given for {sorted(unknown)}, which are not in methods {methods}")
    pairs = []
    for method in methods:
        for s in sparsities:
            cfg = make_config(profile, method, s, overrides=overrides, method_params=method_params.get(method))
            run_seeds_here = seeds + [x for x in extra if x not in seeds and s == seed_sparsity]
            pairs += [(cfg, seed) for seed in run_seeds_here]
    return pairs


def run_pairs(pairs: list[tuple[RunConfig, int]], profile: str | None = None,
              progress: bool = True) -> pd.DataFrame:
    """Run (or load) every (config, seed) pair, dense references first. Returns the run log as one table.

    With `progress` (interactive use) a line per run is printed as it finishes; the book pipeline turns it off so a
    chapter keeps one table instead of a stream of outputs (ipykernel forwards even the kernel's raw stderr).
    """
    dense = sorted({(cfg.dense, seed) for cfg, seed in pairs if cfg.dense is not None}, key=lambda p: p[1])
    todo = dense + [p for p in pairs if p not in dense]
    rows = []
    for i, (cfg, seed) in enumerate(todo, 1):
        cached = is_complete(cfg, seed)
        t = time.perf_counter()
        s = run(cfg, seed, Runtime(progress=progress), profile=profile)
        dt = s["delta_t"]["mean"]
        rows.append({"run_id": cfg.run_id, "method": cfg.kind, "requested": cfg.pruning.sparsity, "seed": seed,
                     "achieved": s["sparsity"]["overall"], "Δ_T": dt,
                     "status": "cached" if cached else f"trained in {time.perf_counter() - t:.0f} s"})
        line = (f"[{i}/{len(todo)}] {cfg.kind} s={cfg.pruning.sparsity} seed {seed}: achieved "
                f"{s['sparsity']['overall']:.4f}, Δ_T {'n/a' if dt is None else f'{dt:+.2f}'} ({rows[-1]['status']})")
        if progress:
            print(line, flush=True)
    return pd.DataFrame(rows).set_index("run_id")


def run_ids(pairs: list[tuple[RunConfig, int]]) -> list[str]:
    return sorted({cfg.run_id for cfg, _ in pairs})


def histories_of(pairs: list[tuple[RunConfig, int]]) -> pd.DataFrame:
    frames = [load_history(cfg.run_id, seed).assign(method=cfg.kind, sparsity_requested=cfg.pruning.sparsity,
                                                     seed=seed) for cfg, seed in pairs]
    return pd.concat(frames, ignore_index=True)


def paper_table(df: pd.DataFrame, sparsity: float) -> pd.DataFrame:
    """The AdapMTL paper's table shape at one sparsity: per-task metrics, per-task Δ_T, component sparsities (%),
    overall Δ_T and Δp; mean over seeds, one row per method (dense first)."""
    at = df[(df["sparsity_requested"] == sparsity) | (df["method"] == "dense")]
    cols = [(t, m) for t, ms in METRICS.items() for m, _ in ms]
    test = at[at["split"] == "test"]
    rows = []
    for method, g in test.groupby("method", sort=False):
        row = {"method": method, "seeds": g["seed"].nunique()}
        for t, m in cols:
            row[f"{t}/{m}"] = g[(g["task"] == t) & (g["metric"] == m)]["value"].mean()
        for t in list(METRICS) + ["mean"]:
            row[f"Δ_T {t}"] = g[(g["task"] == t) & (g["metric"] == "delta_t")]["value"].mean()
        row["Δp mean"] = g[(g["task"] == "mean") & (g["metric"] == "delta_p")]["value"].mean()
        sp = at[(at["method"] == method) & (at["metric"] == "sparsity")]
        for comp, v in sp.groupby("task")["value"].mean().items():
            row[f"sparsity {comp} %"] = 100 * v
        row["sparsity overall %"] = 100 * g["sparsity"].mean()
        rows.append(row)
    out = pd.DataFrame(rows).set_index("method")
    order = ["dense"] + sorted(i for i in out.index if i != "dense")
    return out.reindex([i for i in order if i in out.index])


def method_card(method: str):
    """The method's own documentation (paper, hyperparameters, deviations) as Markdown for the chapter."""
    import inspect

    from IPython.display import Markdown

    from .pruning import STRATEGIES

    cls = STRATEGIES.get(method)
    module_doc = inspect.getdoc(inspect.getmodule(cls)) or ""
    return Markdown(f"**Method `{method}`** (`{cls.__module__}`)\n\n{module_doc}")


def size_table(pairs: list[tuple[RunConfig, int]]) -> pd.DataFrame:
    """Bytes of the exported models: dense float32 vs the sparse format (bitmask + kept values), seed-0 runs."""
    from .runner import read_summary, summary_path

    rows = []
    for cfg, seed in pairs:
        if seed != min(s for c, s in pairs if c.run_id == cfg.run_id):
            continue
        b = read_summary(summary_path(cfg, seed))["bytes"]
        rows.append({"method": cfg.kind, "sparsity": cfg.pruning.sparsity, "dense float32 (KiB)":
                     b["dense_float32"] / 1024, "sparse file (KiB)": b["sparse_file"] / 1024,
                     "ratio": b["sparse_file"] / b["dense_float32"]})
    return pd.DataFrame(rows).set_index(["method", "sparsity"]).sort_index()


def glue_value(name: str, value: Any) -> None:
    """Glue one number or word for the prose (numbers in text always come from the runs)."""
    from myst_nb import glue

    glue(name, value, display=False)


def sparsity_levels_table(df: pd.DataFrame, sparsities: Iterable[float]) -> pd.DataFrame:
    """`paper_table` rows of the pruned runs, stacked over requested sparsities (index: sparsity, method)."""
    return pd.concat({f"{s:.0%}": paper_table(df, s).drop(index="dense", errors="ignore") for s in sparsities},
                     names=["requested"])
