"""Tables the chapters show, from the tidy summaries (`runs.results`) and the evidence (`study`): metrics per run, the
AdapMTL paper's table shape, ablation and sensitivity tables, the paper's table beside ours, the model sizes, the
multi-domain summary, the claims table; and `show`, how every table looks on a page."""

from __future__ import annotations

import json
from importlib import resources
from typing import Any, Iterable

import pandas as pd

from ..core import catalogue
from ..core.config import MDLConfig, RunConfig
from ..core.data.datasets import dataset_spec
from ..core.data.packaged import LICENCES, PACKAGES
from ..core.identity import run_id
from ..core.metrics import METRICS
from ..core.models import build_model
from ..core.tasks import task_spec
from ..runs.kinds import summary
from ..runs.multidomain import ensure_domains
from ..runs.results import load_summaries
from ..study.design import PAPER_KEYS
from ..study.evidence import comparison_table
from ..study.stats import fmt_interval, half_width


def show(df: pd.DataFrame, digits: int = 2):
    """A table as a page shows it: no index, text wrapped and left-aligned, numbers rounded to `digits`."""
    return (df.style.hide(axis="index").format(precision=digits, na_rep="–")
            .set_properties(**{"white-space": "normal", "text-align": "left", "vertical-align": "top"}))


def describe(cfg: RunConfig) -> pd.DataFrame:
    """Size of each component of the model `cfg` builds."""
    model = build_model(cfg.model, cfg.tasks)
    rows = [{"component": name, "parameters": sum(p.numel() for p in mod.parameters())}
            for name, mod in model.components().items()]
    return pd.DataFrame(rows).set_index("component")


def metric_summary(cfg: RunConfig, seeds: Iterable[int]) -> pd.DataFrame:
    """Test metrics of `cfg`: mean and 95 % interval half-width over seeds, one row per (task, metric), in the
    paper's order."""
    df = load_summaries([run_id(cfg)])
    df = df[(df["split"] == "test") & df["seed"].isin(list(seeds))]
    order = [(t, m) for t, ms in METRICS.items() for m, _ in ms]
    g = df.groupby(["task", "metric"])["value"].agg(["mean", half_width, "count"])
    g = g.reindex([o for o in order if o in g.index])
    higher = {(t, m): ("↑" if s > 0 else "↓") for t, ms in METRICS.items() for m, s in ms}
    g.insert(0, "better", [higher[i] for i in g.index])
    return g.rename(columns={"half_width": "± 95 %", "count": "seeds"})


# The paper's headline columns (a page shows these 8; the full 21 are in the appendix): each task's primary metric and
# its Δ_T, the backbone's sparsity and the overall Δ_T
PAPER_COLUMNS = ("seg/miou", "Δ_T seg", "normal/angle_mean", "Δ_T normal", "depth/abs_err", "Δ_T depth",
                 "sparsity backbone %", "Δ_T mean")
SHORT_NAMES = {"seg/miou": "mIoU %", "normal/angle_mean": "angle °", "depth/abs_err": "abs err",
               "sparsity backbone %": "backbone zeros %"}  # headers narrow enough for 8 columns at page width


def _headline(table: pd.DataFrame, columns: Iterable[str] | None) -> pd.DataFrame:
    """`table` restricted to `columns` with short headers (None: every column, names unchanged)."""
    if columns is None:
        return table
    return table[[c for c in columns if c in table.columns]].rename(columns=SHORT_NAMES)


def paper_table(df: pd.DataFrame, sparsity: float, columns: Iterable[str] | None = PAPER_COLUMNS) -> pd.DataFrame:
    """The AdapMTL paper's table shape at one sparsity: per-task metrics, per-task Δ_T, component sparsities (%),
    overall Δ_T and Δp; mean over seeds, one row per method (dense first). `columns`: the paper's headline ones
    (default), or None for all."""
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
    out = out.reindex([i for i in order if i in out.index])
    if columns is not None:
        out.index = [catalogue.label(i) for i in out.index]
        out.index.name = "method"
    return _headline(out, columns)


def size_table(pairs: list[tuple[RunConfig, int]]) -> pd.DataFrame:
    """Bytes of the exported models: dense float32 vs the sparse format (bitmask + kept values), lowest seed of each
    run."""
    first: dict[str, tuple[RunConfig, int]] = {}
    for cfg, seed in pairs:
        if run_id(cfg) not in first or seed < first[run_id(cfg)][1]:
            first[run_id(cfg)] = (cfg, seed)
    rows = []
    for cfg, seed in first.values():
        b = summary(cfg, seed)["bytes"]
        rows.append({"method": cfg.kind, "sparsity": cfg.pruning.sparsity, "dense float32 (KiB)":
                     b["dense_float32"] / 1024, "sparse file (KiB)": b["sparse_file"] / 1024,
                     "ratio": b["sparse_file"] / b["dense_float32"]})
    return pd.DataFrame(rows).set_index(["method", "sparsity"]).sort_index()


def sparsity_levels_table(df: pd.DataFrame, sparsities: Iterable[float]) -> pd.DataFrame:
    """`paper_table` rows of the pruned runs, stacked over requested sparsities (index: sparsity, method)."""
    return pd.concat({f"{s:.0%}": paper_table(df, s, None).drop(index="dense", errors="ignore") for s in sparsities},
                     names=["requested"])


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


def sensitivity_table(df: pd.DataFrame) -> pd.DataFrame:
    """Achieved overall sparsity (%) and mean Δ_T per (init, weight decay) of a `sensitivity_pairs` grid."""
    runs = df.drop_duplicates(["run_id", "seed"]).set_index("run_id")
    dt = df[(df["metric"] == "delta_t") & (df["task"] == "mean")].groupby("run_id")["value"].mean()
    rows = []
    for rid, r in runs.iterrows():
        init, wd = (float(part.split()[1]) for part in r["variant"].split(", "))
        rows.append({"init": init, "weight decay": wd, "achieved sparsity %": 100 * r["sparsity"], "Δ_T": dt.get(rid)})
    return pd.DataFrame(rows)


def ablation_table(df: pd.DataFrame, group: str) -> pd.DataFrame:
    return sensitivity_table(df) if group == "sensitivity" else variant_table(df)


def _paper_label(name: str) -> str:
    """A paper row's name as the page shows it: our label for a method we ran, the paper's own for its ablation."""
    if "w/o" in name:
        return "AdapMTL w/o adaptive thresholds"
    return catalogue.label(PAPER_KEYS.get(name, name))


def paper_beside_ours(rec: pd.DataFrame) -> pd.DataFrame:
    """The paper's main table and ours in the same columns, leaderboard style: per method of the paper that we ran
    (`evidence.records` rows), its rank and Δ_T against the dense reference in the paper, then ours (mean ± 95 %
    interval; rows whose intervals overlap share a rank, as in every leaderboard here), and the backbone's sparsity in
    both. Ranks are among the rows shown, by Δ_T against the dense reference (the paper's only convention)."""
    paper = paper_reference(None).drop(index="dense")
    paper = paper[paper.index.map(lambda m: PAPER_KEYS.get(m) in set(rec["method"]))]
    ours_rec = rec[rec["method"].isin([PAPER_KEYS[m] for m in paper.index])]
    ours_rec = ours_rec.drop_duplicates(["run_id", "seed"])
    if (ours_rec.groupby("method")["run_id"].nunique() > 1).any():
        raise ValueError("paper_beside_ours needs one configuration per method (e.g. `plan.paper_pairs`)")
    board = comparison_table(ours_rec.assign(label=ours_rec["method"]), ours=None, value="delta_t").set_index("label")
    backbone = ours_rec.groupby("method")["sparsity backbone"].mean() * 100
    paper_rank = paper["Δ_T mean"].rank(ascending=False, method="min").astype(int)
    rows = []
    for name, r in paper.iterrows():
        key = PAPER_KEYS[name]
        rows.append({"method": catalogue.label(key), "paper rank": paper_rank[name],
                     "paper Δ_T": f"{r['Δ_T mean']:+.2f}", "our rank": board.loc[key, "rank"],
                     "our Δ_T vs dense": board.loc[key, "Δ_T vs dense"],
                     "paper backbone %": r["sparsity backbone %"], "our backbone %": round(float(backbone[key]), 1)})
    return pd.DataFrame(rows).sort_values("paper rank").reset_index(drop=True)


def paper_reference(columns: Iterable[str] | None = PAPER_COLUMNS) -> pd.DataFrame:
    """The AdapMTL paper's main table as its repository's README shows it (NYU-v2, MobileNetV2 backbone + ASPP heads,
    90% overall sparsity, 40-class segmentation; transcribed in adapmtl.md §3.1), in `paper_table`'s column names
    (`columns`: the headline ones, or None for all 21)."""
    with resources.files("mtlprune.study").joinpath("reference/adapmtl_table2.csv").open() as fh:
        out = pd.read_csv(fh).set_index("method")
    if columns is not None:
        out.index = pd.Index([_paper_label(i) for i in out.index], name="method")
    return _headline(out, columns)


def dataset_table(dataset: str) -> pd.DataFrame:
    """The tasks of a registered dataset as the model, the losses and the metrics read them (`tasks`, `datasets`)."""
    rows = []
    for t in dataset_spec(dataset).tasks:
        spec = task_spec(t)
        loss = getattr(spec.loss, "func", spec.loss).__name__.removesuffix("_loss")
        rows.append({"task": t, "what it predicts": spec.title, "head outputs": spec.channels, "loss": loss,
                     "metrics (↑ higher / ↓ lower is better)": ", ".join(f"{m} {'↑' if s > 0 else '↓'}"
                                                                           for m, s in spec.metrics),
                     "ranked by": spec.primary})
    return pd.DataFrame(rows)


def _pm(values: pd.Series, digits: int) -> str:
    """Mean ± 95 % interval half-width over seeds, unsigned (the mean alone below two seeds)."""
    return fmt_interval(float(values.mean()), half_width(values), digits, signed=False)


def summary_table(df: pd.DataFrame) -> pd.DataFrame:
    """One row per method and budget, 8 columns: seeds, mean accuracy and S-score (mean ± 95 % interval over seeds),
    parameters and MACs (× one single-domain backbone, mean), and latency (median ratio, with the median interquartile
    range of the paired repeats). The per-domain accuracies are in the figure."""
    rows = []
    for (method, budget), g in df.groupby(["method", "budget"]):
        rows.append({"method": method, "budget": budget, "seeds": g["seed"].nunique(),
                     "mean accuracy (%)": _pm(g["mean accuracy"], 1), "S-score": _pm(g["S-score"], 0),
                     "params ×": round(float(g["params ratio"].mean()), 2),
                     "MACs ×": round(float(g["MACs ratio"].mean()), 2),
                     "latency × (IQR)": f"{g['latency ratio'].median():.2f} ({g['latency IQR'].median():.2f})"})
    return pd.DataFrame(rows)


def styled(tbl: pd.DataFrame):
    """The claims table as the page shows it: text wrapped and left-aligned, verdicts coloured, no index."""
    colours = {"reproduced": "#1a7f37", "not reproduced": "#b42318", "tie": "#6e6e6e",
               "undetermined at this budget": "#9a6700"}
    return show(tbl).map(lambda v: f"color: {colours.get(v, 'inherit')}; font-weight: bold", subset=["verdict"])


def benchmark_table(cfg: MDLConfig) -> pd.DataFrame:
    """The multi-domain benchmark a run reads, from its annotation files: per domain its classes, its train / val /
    test (and pretraining `source`) images, and where it comes from with its licence (the packaged real domains;
    generated for the offline benchmark, except its real digits)."""
    data = cfg.source.data
    root = ensure_domains(data, progress=False)
    rows = []
    for domain in data.domains:
        row: dict[str, Any] = {"domain": domain + (" (source)" if domain == data.source else "")}
        for split in ("train", "val", data.test_split, "source"):
            path = root / "annotations" / f"{domain}_{split}.json"
            if path.exists():
                ann = json.loads(path.read_text())
                row["classes"] = len(ann["categories"])
                row[split if split != data.test_split else "test"] = len(ann["images"])
        if data.packaged is not None:
            row["data"], row["licence"] = f"real: {PACKAGES[domain]}", LICENCES[domain]
        elif data.synthetic is not None:
            real = domain == "digits"
            row["data"] = "real: UCI digits (scikit-learn)" if real else "generated"
            row["licence"] = LICENCES["digits"] if real else "–"
        else:
            row["data"], row["licence"] = "the Visual Decathlon release", "its domains' own"
        rows.append(row)
    columns = ["domain", "classes", "train", "val", "test", "source", "data", "licence"]
    return pd.DataFrame(rows).reindex(columns=columns).fillna({"source": 0}).astype({"source": int})


def convergence_table(conv: pd.DataFrame) -> pd.DataFrame:
    """`stats.convergence` for the page: per method and length, its mean Δ_T ± 95 % interval there and at the double,
    the change, and whether doubling moved it (`NO` where it did)."""
    return pd.DataFrame({
        "method": [catalogue.label(m) for m in conv["method"]],
        "length → double": [f"{a} → {b}" for a, b in zip(conv["budget"], conv["double"])],
        "Δ_T vs": conv["against"],
        "at length": [fmt_interval(m, c) for m, c in zip(conv["mean"], conv["ci"])],
        "at double": [fmt_interval(m, c) for m, c in zip(conv["mean 2b"], conv["ci 2b"])],
        "change": [fmt_interval(c, float("nan")) for c in conv["change"]],
        "converged": conv["converged"].map({True: "yes", False: "NO"}),
    })
