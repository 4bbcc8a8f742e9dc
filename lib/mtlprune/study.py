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
from .metrics import METRICS, delta_t
from .models import build_model
from .profiles import PROFILES, SEEDS, make_config
from .results import load_history, load_summaries
from .runner import is_complete, load_state, read_summary, rerun_fix, run, summary_path
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
    folder = paths.seed_dir(cfg.run_id, seed)
    state = load_state(folder / "model.pt", "the trained weights", rerun_fix(folder))
    model.load_state_dict(state)
    return model.eval()


def glue_metrics(prefix: str, table: pd.DataFrame) -> None:
    """Glue every (task, metric) mean of a `metric_summary` table as `<prefix>_<task>_<metric>` for the prose."""
    for (task, metric), row in table.iterrows():
        glue_value(f"{prefix}_{task}_{metric}", float(row["mean"]))


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
        if progress:
            print(f"[{i}/{len(todo)}] {cfg.kind} s={cfg.pruning.sparsity} seed {seed}: achieved "
                  f"{s['sparsity']['overall']:.4f}, Δ_T {'n/a' if dt is None else f'{dt:+.2f}'} "
                  f"({rows[-1]['status']})", flush=True)
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
    """Bytes of the exported models: dense float32 vs the sparse format (bitmask + kept values), lowest seed of each
    run."""
    first: dict[str, tuple[RunConfig, int]] = {}
    for cfg, seed in pairs:
        if cfg.run_id not in first or seed < first[cfg.run_id][1]:
            first[cfg.run_id] = (cfg, seed)
    rows = []
    for cfg, seed in first.values():
        b = read_summary(summary_path(cfg, seed))["bytes"]
        rows.append({"method": cfg.kind, "sparsity": cfg.pruning.sparsity, "dense float32 (KiB)":
                     b["dense_float32"] / 1024, "sparse file (KiB)": b["sparse_file"] / 1024,
                     "ratio": b["sparse_file"] / b["dense_float32"]})
    return pd.DataFrame(rows).set_index(["method", "sparsity"]).sort_index()


def glue_value(name: str, value: Any) -> None:
    """Glue one number or word for the prose (numbers in text always come from the runs)."""
    from myst_nb import glue

    glue(name, value, display=False)


def glue_ranking(paper: pd.DataFrame, sparsity: float) -> None:
    """Glue the best and worst pruned method of a `paper_table` by mean Δ_T, and the sparsity, for the prose."""
    ranked = paper.drop(index="dense", errors="ignore")["Δ_T mean"].sort_values(ascending=False)
    glue_value("table_sparsity_pct", f"{sparsity:.0%}")
    glue_value("best_method", ranked.index[0])
    glue_value("best_delta_t", float(ranked.iloc[0]))
    glue_value("worst_method", ranked.index[-1])
    glue_value("worst_delta_t", float(ranked.iloc[-1]))


def sparsity_levels_table(df: pd.DataFrame, sparsities: Iterable[float]) -> pd.DataFrame:
    """`paper_table` rows of the pruned runs, stacked over requested sparsities (index: sparsity, method)."""
    return pd.concat({f"{s:.0%}": paper_table(df, s).drop(index="dense", errors="ignore") for s in sparsities},
                     names=["requested"])


# ---------------------------------------------------------------------------------------------------------------------
# Labelled variants: ablations and sensitivity grids
# ---------------------------------------------------------------------------------------------------------------------
VARIANT_KEYS = {"method", "params", "weighting", "weighting_params", "sparse_overrides"}


def variant_pairs(profile: str, sparsity: float, seeds: Iterable[int] | None,
                  variants: dict[str, dict[str, Any]]) -> list[tuple[str, RunConfig, int]]:
    """(label, config, seed) for every named variant, e.g. {"equal weighting": {"method": "adapmtl",
    "weighting": "equal"}}; keys: method (required), params, weighting, weighting_params, sparse_overrides."""
    if not isinstance(variants, dict) or not variants:
        raise ValueError(f"variants must be a non-empty mapping label -> spec, got {variants!r}")
    seeds = check_seeds(list(seeds) if seeds is not None else default_seeds(profile, "main"))
    out = []
    for label, spec in variants.items():
        if not isinstance(spec, dict) or "method" not in spec or set(spec) - VARIANT_KEYS:
            raise ValueError(f"variant {label!r}: expected a mapping with 'method' and optionally "
                             f"{sorted(VARIANT_KEYS - {'method'})}, got {spec!r}")
        cfg = make_config(profile, spec["method"], check_sparsities([sparsity])[0],
                          method_params=spec.get("params"), weighting=spec.get("weighting"),
                          weighting_params=spec.get("weighting_params"),
                          sparse_overrides=spec.get("sparse_overrides"))
        out += [(label, cfg, seed) for seed in seeds]
    return out


def run_labelled(labelled: list[tuple[str, RunConfig, int]], profile: str | None = None,
                 progress: bool = True) -> pd.DataFrame:
    log = run_pairs([(cfg, seed) for _, cfg, seed in labelled], profile=profile, progress=progress)
    labels = {cfg.run_id: label for label, cfg, _ in labelled}
    return log.assign(variant=[labels.get(rid, "dense reference") for rid in log.index])


def labelled_summaries(labelled: list[tuple[str, RunConfig, int]]) -> pd.DataFrame:
    """`load_summaries` of the labelled runs with a `variant` column (the label)."""
    labels = {cfg.run_id: label for label, cfg, _ in labelled}
    df = summaries_of([(cfg, seed) for _, cfg, seed in labelled])
    df = df[df["run_id"].isin(labels)]
    return df.assign(variant=df["run_id"].map(labels))


def variant_table(df: pd.DataFrame) -> pd.DataFrame:
    """One row per variant (in the given order): Δ_T per task and mean (mean ± sd over seeds), achieved sparsity per
    component and overall (%)."""
    rows = []
    for variant, g in df.groupby("variant", sort=False):
        row = {"variant": variant, "seeds": g["seed"].nunique()}
        for task in list(METRICS) + ["mean"]:
            v = g[(g["metric"] == "delta_t") & (g["task"] == task)]["value"].astype(float)
            row[f"Δ_T {task}"] = v.mean()
            if task == "mean":
                row["Δ_T mean sd"] = v.std()
        sp = g[g["metric"] == "sparsity"].groupby("task")["value"].mean()
        for comp in ["backbone", *METRICS]:
            row[f"{comp} %"] = 100 * sp.get(comp, float("nan"))
        row["overall %"] = 100 * g.drop_duplicates(["run_id", "seed"])["sparsity"].mean()
        rows.append(row)
    return pd.DataFrame(rows).set_index("variant")


def sensitivity_pairs(profile: str, sparsity: float, inits: Iterable[float], decays: Iterable[float],
                      seed: int = 0, method: str = "adapmtl") -> list[tuple[str, RunConfig, int]]:
    """The faithful mechanism over threshold init × weight decay (the two knobs the official code must hand-tune)."""
    inits, decays = [float(v) for v in inits], [float(v) for v in decays]
    if not inits or not decays or any(d < 0 for d in decays):
        raise ValueError(f"inits and decays must be non-empty, decays >= 0; got {inits}, {decays}")
    variants = {f"init {i:g}, wd {d:g}": {"method": method, "params": {"mechanism": "faithful", "init": i},
                                          "sparse_overrides": {"train.weight_decay": d}}
                for i in inits for d in decays}
    return variant_pairs(profile, sparsity, [seed], variants)


def sensitivity_table(df: pd.DataFrame) -> pd.DataFrame:
    """Achieved overall sparsity (%) and mean Δ_T per (init, weight decay) of a `sensitivity_pairs` grid."""
    runs = df.drop_duplicates(["run_id", "seed"]).set_index("run_id")
    dt = df[(df["metric"] == "delta_t") & (df["task"] == "mean")].groupby("run_id")["value"].mean()
    rows = []
    for rid, r in runs.iterrows():
        init, wd = (float(part.split()[1]) for part in r["variant"].split(", "))
        rows.append({"init": init, "weight decay": wd, "achieved sparsity %": 100 * r["sparsity"], "Δ_T": dt.get(rid)})
    return pd.DataFrame(rows)


# ---------------------------------------------------------------------------------------------------------------------
# The best baseline, chosen on the validation split
# ---------------------------------------------------------------------------------------------------------------------
def validation_delta_t(cfg: RunConfig, seed: int) -> float:
    """Mean Δ_T of a pruned run on the validation split (against its dense reference's validation metrics)."""
    run_summary = read_summary(summary_path(cfg, seed))
    dense_summary = read_summary(summary_path(cfg.dense, seed))
    return delta_t(run_summary["val_metrics"], dense_summary["val_metrics"])["mean"]


def best_by_validation(pairs: list[tuple[RunConfig, int]], sparsities: Iterable[float],
                       seed: int | None = None) -> dict[float, RunConfig]:
    """Per requested sparsity, the run config with the best validation Δ_T at `seed` (default: the lowest seed in
    `pairs`). The test split never chooses: this is how 'the best baseline' is picked before its extra seeds run."""
    seed = min(s for _, s in pairs) if seed is None else seed
    out = {}
    for s in check_sparsities(list(sparsities)):
        cands = [cfg for cfg, sd in pairs if sd == seed and cfg.pruning.sparsity == s]
        if not cands:
            raise ValueError(f"no run at sparsity {s} and seed {seed} among the given pairs")
        out[s] = max(cands, key=lambda c: validation_delta_t(c, seed))
    return out


def best_table(df: pd.DataFrame, best: dict[float, RunConfig], method: str) -> pd.DataFrame:
    """Per sparsity: `method` and the validation-chosen best baseline, mean Δ_T ± sd over seeds and achieved sparsity."""
    rows = []
    for s, cfg in best.items():
        for name in (method, cfg.kind):
            g = df[(df["method"] == name) & (df["sparsity_requested"] == s)]
            dt = g[(g["metric"] == "delta_t") & (g["task"] == "mean")]["value"].astype(float)
            rows.append({"requested": f"{s:.0%}", "method": name, "role": "ours" if name == method else "best baseline",
                         "Δ_T mean": dt.mean(), "Δ_T sd": dt.std(), "seeds": dt.size,
                         "achieved %": 100 * g.drop_duplicates(["run_id", "seed"])["sparsity"].mean()})
    return pd.DataFrame(rows).set_index(["requested", "method"])


def paper_reference() -> pd.DataFrame:
    """The AdapMTL paper's main table as its repository's README shows it (NYU-v2, MobileNetV2 backbone + ASPP heads,
    90% overall sparsity, 40-class segmentation; transcribed in adapmtl.md §3.1), in `paper_table`'s column names."""
    from importlib import resources

    with resources.files("mtlprune").joinpath("reference/adapmtl_table2.csv").open() as fh:
        return pd.read_csv(fh).set_index("method")


def with_seeds(configs: Iterable[RunConfig], seeds: Iterable[int]) -> list[tuple[RunConfig, int]]:
    """Every config at every seed (e.g. the validation-chosen best baselines at the seeds of the method compared)."""
    seeds = check_seeds(list(seeds))
    unique = list({cfg.run_id: cfg for cfg in configs}.values())
    return [(cfg, s) for cfg in unique for s in seeds]


def glue_best(table: pd.DataFrame) -> None:
    """Glue a `best_table` for the prose: `<role>_<pct>_{method,dt,sd}` with role `ours` or `best`."""
    for (requested, method), row in table.iterrows():
        key = f"{'ours' if row['role'] == 'ours' else 'best'}_{requested.rstrip('%')}"
        glue_value(f"{key}_method", method)
        glue_value(f"{key}_dt", float(row["Δ_T mean"]))
        glue_value(f"{key}_sd", float(row["Δ_T sd"]))


def glue_allocation(df: pd.DataFrame, methods: dict[str, str], sparsity: float) -> None:
    """Glue achieved component sparsity (%) and per-task Δ_T of each method at one requested sparsity, as
    `<name>_sp_<component>` and `<name>_dt_<task>` (`methods`: glue name -> method key)."""
    at = df[df["sparsity_requested"] == sparsity]
    for name, method in methods.items():
        g = at[at["method"] == method]
        for comp, v in g[g["metric"] == "sparsity"].groupby("task")["value"].mean().items():
            glue_value(f"{name}_sp_{comp}", 100 * float(v))
        for task, v in g[g["metric"] == "delta_t"].groupby("task")["value"].mean().items():
            glue_value(f"{name}_dt_{task}", float(v))


def ablation_pairs(profile: str, group: str, sparsity: float,
                   seeds: Iterable[int] | None) -> list[tuple[str, RunConfig, int]]:
    """The labelled runs of one AdapMTL ablation group (`ablations.ABLATIONS`), or of all of them with `group="all"`."""
    from . import ablations

    if group == "all":
        variants = {label: spec for g in ablations.ABLATIONS for label, spec in ablations.group(g).items()}
    else:
        variants = ablations.group(group)
    return variant_pairs(profile, sparsity, seeds, variants)


def ablation_group_pairs(profile: str, group: str, sparsity: float, seeds: Iterable[int] | None,
                         inits: Iterable[float] = (), decays: Iterable[float] = ()) -> list[tuple[str, RunConfig, int]]:
    """One ablation chapter's runs: a group of `ablations.ABLATIONS` at `seeds` (None: the profile's main seeds), or
    `sensitivity`, the faithful mechanism's init × weight-decay grid at the first seed."""
    seeds = check_seeds(list(seeds)) if seeds is not None else default_seeds(profile, "main")
    if group == "sensitivity":
        return sensitivity_pairs(profile, sparsity, inits, decays, seeds[0])
    return ablation_pairs(profile, group, sparsity, seeds)


def ablation_table(df: pd.DataFrame, group: str) -> pd.DataFrame:
    return sensitivity_table(df) if group == "sensitivity" else variant_table(df)


def labelled_histories(labelled: list[tuple[str, RunConfig, int]]) -> pd.DataFrame:
    frames = [load_history(cfg.run_id, seed).assign(variant=label, seed=seed, sparsity_requested=cfg.pruning.sparsity)
              for label, cfg, seed in labelled]
    return pd.concat(frames, ignore_index=True)


def summaries_of(pairs: list[tuple[RunConfig, int]]) -> pd.DataFrame:
    """`load_summaries` of exactly these (run, seed) pairs and their dense references: other seeds of the same runs
    (e.g. extra seeds a later chapter added) never leak in, so a chapter shows the same numbers on every rebuild."""
    keep = {(cfg.run_id, s) for cfg, s in pairs} | {(cfg.dense.run_id, s) for cfg, s in pairs if cfg.dense is not None}
    df = load_summaries({r for r, _ in keep})
    return df[[(r, s) in keep for r, s in zip(df["run_id"], df["seed"])]].reset_index(drop=True)


def layer_sparsity_of(pairs: list[tuple[RunConfig, int]]) -> pd.DataFrame:
    """`load_layer_sparsity` of exactly these (run, seed) pairs."""
    from .results import load_layer_sparsity

    keep = {(cfg.run_id, s) for cfg, s in pairs}
    df = load_layer_sparsity({r for r, _ in keep})
    return df[[(r, s) in keep for r, s in zip(df["run_id"], df["seed"])]].reset_index(drop=True)
