"""The house style (seaborn) and every figure of the book. Functions return figures; they never call `show()`."""

from __future__ import annotations

import textwrap

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import seaborn as sns
import torch
from matplotlib.colors import ListedColormap

from ..core import catalogue
from ..core.data.rooms import NYU13_CLASSES
from ..core.metrics import METRICS
from ..core.tasks import TASKS
from ..study.stats import half_width

TASK_TITLES = {t: TASKS.get(t).title for t in TASKS.names()}
# One colour per component (a head's is its task's, from the task spec), the same in every figure.
COMPONENT_COLOURS = {"backbone": "#4d4d4d", "overall": "#000000", **{t: TASKS.get(t).colour for t in TASKS.names()}}


def _legend_below(fig: plt.Figure, ax: plt.Axes, y: float) -> None:
    """One legend for the whole figure, in a row under its panels at a readable size (each label once, as `ax` has
    them)."""
    handles, labels = ax.get_legend_handles_labels()
    unique = dict(zip(labels, handles))
    fig.legend(unique.values(), unique.keys(), loc="lower center", bbox_to_anchor=(0.5, y), ncol=len(unique),
               fontsize=10, frameon=False)


def set_style() -> None:
    sns.set_theme(context="notebook", style="whitegrid", palette="colorblind", font_scale=0.95)
    plt.rcParams.update({"figure.dpi": 110, "savefig.dpi": 110, "axes.titleweight": "bold",
                         "figure.constrained_layout.use": True})
    pd.set_option("display.max_columns", 80)
    pd.set_option("display.width", 200)


set_style()


def t_interval(values) -> tuple[float, float]:
    """seaborn `errorbar`: the mean ± the 95 % Student-t half-width over seeds (the book's one interval)."""
    v = np.asarray(values, dtype=float)
    m, h = float(np.mean(v)), half_width(v)
    return (m, m) if not np.isfinite(h) else (m - h, m + h)


def method_palette(values) -> dict[str, str]:
    """The catalogue's fixed colour of every method (key or label; a multi-domain label with its sharing suffix takes
    its method's colour, shaded per suffix); anything else gets a grey."""
    colours = catalogue.colours()
    out = {}
    for v in dict.fromkeys(values):
        base = str(v).split(" (")[0]
        if v in colours:
            out[v] = colours[v]
        elif base in colours:
            shade = sum(1 for k in out if str(k).startswith(base + " ("))
            out[v] = sns.light_palette(colours[base], n_colors=6, reverse=True).as_hex()[min(shade, 4)]
        else:
            out[v] = "#7f7f7f"
    return out


SEG_CMAP = ListedColormap(sns.color_palette("tab20", 13).as_hex())


def training_curves(history: pd.DataFrame) -> plt.Figure:
    """Train losses (every logged step) and validation losses (every epoch) per task; mean ± sd over seeds."""
    tasks = [c.split("/")[1] for c in history.columns if c.startswith("loss/")]
    fig, axes = plt.subplots(1, len(tasks), figsize=(4.2 * len(tasks), 3.2), squeeze=False)
    for ax, task in zip(axes[0], tasks):
        for split, style in (("train", "-"), ("val", "--")):
            sub = history[history["split"] == split]
            if sub.empty:
                continue
            sns.lineplot(data=sub, x="step", y=f"loss/{task}", ax=ax, label=split, linestyle=style, errorbar=t_interval)
        ax.set_title(TASK_TITLES.get(task, task))
        ax.set_xlabel("iteration")
        ax.set_ylabel("loss")
    return fig


def validation_metrics(history: pd.DataFrame, metrics: list[str]) -> plt.Figure:
    """Chosen validation metrics over training (columns like `seg/miou`)."""
    val = history[history["split"] == "val"]
    fig, axes = plt.subplots(1, len(metrics), figsize=(3.6 * len(metrics), 3.0), squeeze=False)
    for ax, col in zip(axes[0], metrics):
        sns.lineplot(data=val, x="step", y=col, ax=ax, errorbar=t_interval, marker="o")
        ax.set_title(f"val {col}")
        ax.set_xlabel("iteration")
    return fig


@torch.no_grad()
def sample_predictions(model: torch.nn.Module, data: dict[str, torch.Tensor], n: int = 3) -> plt.Figure:
    """RGB | truth | prediction for each task on the first `n` samples of a split (no selection)."""
    batch = {k: v[:n] for k, v in data.items()}
    preds = model.eval()(batch["image"])
    cols = ["RGB", "seg truth", "seg pred", "depth truth", "depth pred", "normal truth", "normal pred"]
    fig, axes = plt.subplots(n, len(cols), figsize=(1.9 * len(cols), 1.6 * n), squeeze=False)
    for i in range(n):
        depth_max = float(batch["depth"][i].max()) or 1.0
        label = batch["label"][i].float().numpy()
        panels = [
            (batch["image"][i].permute(1, 2, 0).numpy(), {}),
            (np.ma.masked_less(label, 0), {"cmap": SEG_CMAP, "vmin": 0, "vmax": 12, "interpolation": "nearest"}),
            (preds["seg"][i].argmax(0).numpy(), {"cmap": SEG_CMAP, "vmin": 0, "vmax": 12, "interpolation": "nearest"}),
            (np.ma.masked_equal(batch["depth"][i, 0].numpy(), 0), {"cmap": "viridis", "vmin": 0, "vmax": depth_max}),
            (preds["depth"][i, 0].numpy(), {"cmap": "viridis", "vmin": 0, "vmax": depth_max}),
            ((batch["normal"][i].permute(1, 2, 0).numpy() + 1) / 2 * (batch["normal"][i].abs().sum(0, keepdim=True)
                                                                      .permute(1, 2, 0).numpy() > 0), {}),
            (((preds["normal"][i].permute(1, 2, 0).numpy() + 1) / 2).clip(0, 1), {}),
        ]
        for j, (img, kw) in enumerate(panels):
            ax = axes[i, j]
            ax.imshow(img, **kw)
            ax.set_xticks([])
            ax.set_yticks([])
            ax.grid(False)
            if i == 0:
                ax.set_title(cols[j], fontsize=9)
    return fig


def class_legend() -> plt.Figure:
    fig, ax = plt.subplots(figsize=(9, 1.1), layout="tight")
    ax.imshow(np.arange(13)[None], cmap=SEG_CMAP, aspect="auto", vmin=0, vmax=12)
    ax.set_xticks(range(13), NYU13_CLASSES, rotation=30, fontsize=8)
    ax.set_yticks([])
    ax.grid(False)
    return fig


# ---------------------------------------------------------------------------------------------------------------------
# Pruning figures
# ---------------------------------------------------------------------------------------------------------------------
def _by_achieved(sub: pd.DataFrame) -> pd.DataFrame:
    """Per (method, requested level): mean achieved sparsity, mean value and its 95 % interval over seeds."""
    rows = []
    for (m, req), g in sub.groupby(["method", "sparsity_requested"]):
        rows.append({"method": m, "requested": req, "achieved": g["sparsity"].mean(), "value": g["value"].mean(),
                     "ci": half_width(g["value"])})
    return pd.DataFrame(rows)


def delta_vs_sparsity(df: pd.DataFrame, metric: str = "delta_t") -> plt.Figure:
    """One panel per task (and the mean): Δ against **achieved** sparsity (logit axis: 50 … 98 % evenly spread), one
    line per method, mean ± 95 % interval over seeds; AdapMTL drawn thick."""
    sub = df[(df["metric"] == metric) & (df["method"] != "dense")].copy()
    sub["value"] = sub["value"].astype(float)
    panels = [t for t in METRICS if t in set(sub["task"])] + ["mean"]  # the tasks of the runs, in table order
    fig, axes = plt.subplots(1, len(panels), figsize=(4 * len(panels), 3.8), sharex=True)
    palette, width = _method_style(list(dict.fromkeys(sub["method"])))
    for ax, task in zip(axes, panels):
        pts = _by_achieved(sub[sub["task"] == task])
        for m in palette:
            g = pts[pts["method"] == m].sort_values("achieved")
            if g.empty:
                continue
            ax.errorbar(g["achieved"], g["value"], yerr=g["ci"], color=palette[m], linewidth=width[m], marker="o",
                        markersize=4, capsize=2, label=catalogue.label(m))
        ax.axhline(0, color="0.3", lw=0.8, ls=":")
        ax.set_xscale("logit")
        ax.set_title("Δ_T (mean over tasks)" if task == "mean" else f"Δ_T {TASK_TITLES[task]}")
        ax.set_xlabel("achieved sparsity")
        ax.set_ylabel("Δ vs dense (%)")
    axes[-1].legend(loc="center left", bbox_to_anchor=(1.02, 0.5), fontsize=8)
    return fig


def delta_by_family(df: pd.DataFrame, metric: str = "delta_t", highlight: str = "adapmtl") -> plt.Figure:
    """Small multiples: one panel per method family (the catalogue's), the mean-over-tasks Δ against **achieved**
    sparsity (logit axis), mean ± 95 % interval over seeds, one line per method of the family in its fixed colour;
    `highlight` (when it ran) is drawn thick in every panel as the common yardstick. Shared y axis."""
    sub = df[(df["metric"] == metric) & (df["task"] == "mean") & (df["method"] != "dense")].copy()
    sub["value"] = sub["value"].astype(float)
    pts = _by_achieved(sub)
    family = {m: catalogue.method(m).family if m in catalogue.keys() else "other" for m in pts["method"].unique()}
    groups = list(dict.fromkeys(family[m] for m in pts["method"].unique() if m != highlight))
    if not groups:
        groups = [family.get(highlight, "other")]
    cols = min(3, len(groups))
    rows = -(-len(groups) // cols)
    fig, axes = plt.subplots(rows, cols, figsize=(5.2 * cols, 3.6 * rows), sharex=True, sharey=True, squeeze=False)
    palette = method_palette(pts["method"].unique())
    for ax, fam in zip(axes.flat, groups):
        members = [m for m in pts["method"].unique() if family[m] == fam and m != highlight]
        for m in ([highlight] if highlight in family else []) + members:
            g = pts[pts["method"] == m].sort_values("achieved")
            ax.errorbar(g["achieved"], g["value"], yerr=g["ci"], color=palette[m], marker="o", markersize=4,
                        capsize=2, linewidth=2.8 if m == highlight else 1.5, label=catalogue.label(m),
                        zorder=3 if m == highlight else 2)
        ax.axhline(0, color="0.3", lw=0.8, ls=":")
        ax.set_xscale("logit")
        ax.set_title(fam, fontsize=11)
        ax.legend(fontsize=8, loc="lower left")
    for ax in axes.flat[len(groups):]:
        ax.set_visible(False)
    for ax in axes[-1]:
        ax.set_xlabel("achieved sparsity")
    for ax in axes[:, 0]:
        ax.set_ylabel(f"{'Δ_T' if metric == 'delta_t' else 'Δp'} vs dense (%)")
    return fig


def component_allocation(df: pd.DataFrame, sparsity: float | None = None, index: str = "method") -> plt.Figure:
    """Heatmap of achieved sparsity (%) per `index` (method, or sparsity_requested) × component, mean over seeds;
    `sparsity` restricts to one requested level."""
    df = df[df["method"] != "dense"]
    if sparsity is not None:
        df = df[df["sparsity_requested"] == sparsity]
    sub = df[df["metric"] == "sparsity"]
    wide = sub.pivot_table(index=index, columns="task", values="value", aggfunc="mean") * 100
    wide["overall"] = df.groupby(index)["sparsity"].mean() * 100
    wide = wide[[c for c in ["backbone", *METRICS, "overall"] if c in wide.columns]]  # heads in table order
    if index == "method":  # the catalogue's labels, as in the leaderboards
        wide.index = [catalogue.label(str(i)) for i in wide.index]
    wide.index = [textwrap.fill(str(i), 34) for i in wide.index]  # long variant names wrap instead of squeezing
    lines = sum(str(i).count("\n") + 1 for i in wide.index)
    fig, ax = plt.subplots(figsize=(8.0, max(3.2, 0.3 * lines + 0.25 * len(wide) + 1.8)))
    sns.heatmap(wide, annot=True, fmt=".1f", cmap="mako_r", vmin=max(0, wide.values.min() - 5), vmax=100,
                cbar_kws={"label": "zeros (%)"}, ax=ax)
    ax.set_title("where the zeros go" + (f" at {sparsity:.0%} requested sparsity" if sparsity is not None else ""))
    ax.set_xlabel("component")
    ax.set_ylabel("")
    return fig


def layer_profiles(layers: pd.DataFrame, sparsity: float | None = None, hue: str = "method") -> plt.Figure:
    """Achieved sparsity of every prunable layer (in network order) per `hue`; components shaded."""
    sub = layers[layers["method"] != "dense"]
    if sparsity is not None:
        sub = sub[sub["sparsity_requested"] == sparsity]
    sub = sub.groupby([hue, "order", "layer", "component"], as_index=False)["sparsity"].mean()
    if hue == "sparsity_requested":
        sub[hue] = sub[hue].map(lambda v: f"{v:.0%}")
    fig, ax = plt.subplots(figsize=(12, 3.8))
    sns.lineplot(data=sub, x="order", y="sparsity", hue=hue, style=hue, markers=True, dashes=False,
                 ax=ax, markersize=4)
    bounds = sub.groupby("component")["order"].agg(["min", "max"]).sort_values("min")
    for i, (comp, b) in enumerate(bounds.iterrows()):
        if i % 2 == 0:
            ax.axvspan(b["min"] - 0.5, b["max"] + 0.5, color="0.93", zorder=0)
        ax.text((b["min"] + b["max"]) / 2, 1.02, comp, ha="center", va="bottom", fontsize=8,
                transform=ax.get_xaxis_transform())
    ax.set_xlabel("prunable layer (network order)")
    ax.set_ylabel("achieved sparsity")
    ax.legend(loc="center left", bbox_to_anchor=(1.01, 0.5), fontsize=8)
    return fig


def sparsity_over_training(history: pd.DataFrame) -> plt.Figure:
    """Per-component sparsity over the sparse phase, one panel per requested sparsity (seed 0 shown)."""
    train = history[(history["split"] == "train") & (history["seed"] == history["seed"].min())]
    cols = [c for c in train.columns if c.startswith("sparsity/")]
    long = train.melt(id_vars=["step", "sparsity_requested"], value_vars=cols, var_name="component",
                      value_name="sparsity")
    long["component"] = long["component"].str.removeprefix("sparsity/")
    levels = sorted(long["sparsity_requested"].unique())
    fig, axes = plt.subplots(1, len(levels), figsize=(3.6 * len(levels), 3.0), sharey=True, squeeze=False)
    for i, (ax, s) in enumerate(zip(axes[0], levels)):
        sns.lineplot(data=long[long["sparsity_requested"] == s], x="step", y="sparsity", hue="component", ax=ax,
                     palette=COMPONENT_COLOURS, legend=i == len(levels) - 1)
        ax.set_title(f"requested {s:.0%}")
        ax.set_xlabel("iteration of the sparse phase")
    if len(levels):
        axes[0][-1].legend(loc="center left", bbox_to_anchor=(1.02, 0.5), fontsize=8)
    return fig


HEADLINE_METRICS = [("seg", "miou", "mIoU (%)"), ("seg", "pixacc", "pixel acc. (%)"), ("depth", "abs_err", "abs error (m)"),
                    ("depth", "delta1", "δ<1.25 (%)"), ("normal", "angle_mean", "mean angle (°)"),
                    ("normal", "within_22_5", "within 22.5° (%)")]


def metrics_vs_sparsity(df: pd.DataFrame) -> plt.Figure:
    """Raw test metrics against **achieved** sparsity (logit axis) per method, mean ± 95 % interval over seeds; the
    dense reference as a dashed line."""
    test = df[df["split"] == "test"]
    fig, axes = plt.subplots(2, 3, figsize=(15, 7), sharex=True)
    pruned = test[test["method"] != "dense"]
    palette, width = _method_style(list(dict.fromkeys(pruned["method"])))
    for i, (ax, (task, metric, label)) in enumerate(zip(axes.flat, HEADLINE_METRICS)):
        g = test[(test["task"] == task) & (test["metric"] == metric)]
        pts = _by_achieved(g[g["method"] != "dense"].assign(value=lambda d: d["value"].astype(float)))
        for m in palette:
            p = pts[pts["method"] == m].sort_values("achieved")
            if len(p):
                ax.errorbar(p["achieved"], p["value"], yerr=p["ci"], color=palette[m], linewidth=width[m],
                            marker="o", markersize=4, capsize=2, label=catalogue.label(m))
        dense = g[g["method"] == "dense"]["value"]
        if len(dense):
            ax.axhline(dense.mean(), color="0.2", lw=1, ls="--", label="dense")
        ax.set_xscale("logit")
        ax.set_title(f"{TASK_TITLES[task]}: {label}")
        ax.set_xlabel("achieved sparsity")
        ax.set_ylabel(label)
        if i == 2:
            ax.legend(loc="center left", bbox_to_anchor=(1.02, 0.0), fontsize=8)
    return fig


def layer_heatmap(layers: pd.DataFrame, sparsity: float) -> plt.Figure:
    """Method × layer heatmap of achieved sparsity at one requested level (layers in network order, components
    separated by white lines): many methods stay readable where overlaid lines would not."""
    sub = layers[(layers["method"] != "dense") & (layers["sparsity_requested"] == sparsity)]
    wide = sub.pivot_table(index="method", columns="order", values="sparsity", aggfunc="mean")
    wide.index = [catalogue.label(str(i)) for i in wide.index]
    comp = sub.drop_duplicates("order").set_index("order")["component"].reindex(wide.columns)
    fig, ax = plt.subplots(figsize=(13, 0.38 * len(wide) + 1.4))
    sns.heatmap(wide * 100, cmap="mako_r", vmin=0, vmax=100, cbar_kws={"label": "zeros (%)"}, ax=ax,
                xticklabels=False)
    edges = [i for i in range(1, len(comp)) if comp.iloc[i] != comp.iloc[i - 1]]
    for e in edges:
        ax.axvline(e, color="white", lw=2)
    for start, end in zip([0] + edges, edges + [len(comp)]):
        ax.text((start + end) / 2, -0.3, comp.iloc[start], ha="center", va="bottom", fontsize=9)
    ax.set_xlabel("prunable layer (network order)")
    ax.set_ylabel("")
    ax.set_title(f"per-layer sparsity at {sparsity:.0%} requested", pad=26)
    return fig


def scalars_over_training(history: pd.DataFrame, prefix: str, ylabel: str, title: str,
                          by: str = "sparsity_requested") -> plt.Figure:
    """Logged scalars `<prefix><name>` (thresholds, task weights...) over the sparse phase, one panel per `by` value,
    mean and 95 % interval over seeds; components and tasks in their fixed colours."""
    train = history[history["split"] == "train"]
    cols = [c for c in train.columns if c.startswith(prefix)]
    long = train.melt(id_vars=["step", by, "seed"], value_vars=cols, var_name="name", value_name="value").dropna()
    long["name"] = long["name"].str.removeprefix(prefix)
    levels = list(dict.fromkeys(long[by]))
    fig, axes = plt.subplots(1, len(levels), figsize=(3.8 * len(levels), 3.0), sharey=True, squeeze=False)
    for i, (ax, level) in enumerate(zip(axes[0], levels)):
        names = list(dict.fromkeys(long["name"]))
        palette = {n: COMPONENT_COLOURS.get(n, c) for n, c in zip(names, sns.color_palette("colorblind", len(names)))}
        sns.lineplot(data=long[long[by] == level], x="step", y="value", hue="name", errorbar=t_interval, ax=ax,
                     palette=palette, legend=i == len(levels) - 1)
        ax.set_title(f"requested {level:.0%}" if isinstance(level, float) else str(level), fontsize=9)
        ax.set_xlabel("iteration of the sparse phase")
        ax.set_ylabel(ylabel)
    if levels:
        axes[0][-1].legend(loc="center left", bbox_to_anchor=(1.02, 0.5), fontsize=8)
    fig.suptitle(title, y=1.1)  # above the panels' own titles
    return fig


def sensitivity_heatmaps(table: pd.DataFrame, target: float) -> plt.Figure:
    """Threshold init × weight decay → achieved sparsity and mean Δ_T (a `study.sensitivity_table`)."""
    fig, axes = plt.subplots(1, 2, figsize=(11, 0.5 * table["init"].nunique() + 2.2))
    for ax, col, cmap in zip(axes, ["achieved sparsity %", "Δ_T"], ["mako_r", "rocket"]):
        wide = (table.groupby(["init", "weight decay"])[col].mean().unstack().sort_index(ascending=False)
                .astype(float))
        if wide.isna().all().all():  # e.g. Δ_T against a reference whose metrics are 0 (tiny profiles): say so
            ax.text(0.5, 0.5, f"{col}: undefined for every cell", ha="center", va="center", transform=ax.transAxes)
        else:
            sns.heatmap(wide, annot=True, fmt=".1f", cmap=cmap, ax=ax, cbar_kws={"label": col})
        ax.set_title(col + (f" (target {target:.0%})" if col.startswith("achieved") else ""))
        ax.set_xlabel("weight decay (coupled L2, thresholds included)")
        ax.set_ylabel("threshold init s₀ (logit)")
    return fig


def ablation_figure(table: pd.DataFrame, group: str, sparsity: float) -> plt.Figure:
    """The headline figure of an ablation chapter: the sensitivity heatmaps, or mean Δ_T per variant (± sd)."""
    if group == "sensitivity":
        return sensitivity_heatmaps(table, sparsity)
    fig, ax = plt.subplots(figsize=(7, 0.45 * len(table) + 1.2))
    ax.barh(table.index[::-1], table["Δ_T mean"][::-1], xerr=table["Δ_T mean sd"][::-1].fillna(0),
            color=sns.color_palette()[0], capsize=3)
    ax.axvline(0, color="0.3", lw=0.8)
    ax.set_xlabel(f"Δ_T vs dense (%), mean over tasks, at {sparsity:.0%} requested")
    ax.set_title(f"ablation: {group}")
    return fig


# ---------------------------------------------------------------------------------------------------------------------
# Multi-domain learning
# ---------------------------------------------------------------------------------------------------------------------
def mdl_accuracy(df: pd.DataFrame) -> plt.Figure:
    """Test accuracy per domain and its mean over domains, mean ± 95 % interval over seeds, every method in its
    catalogue colour. With several budgets: one panel per domain against the budget (the budget-free baselines as
    dashed lines) plus the S-score; with one budget: grouped bars, one group per domain."""
    acc_cols = [c for c in df.columns if c.startswith("acc ")]
    palette = method_palette(df["method"])
    switched = df[df["switched"]]
    flat = df[~df.index.isin(switched.index)]
    if switched["budget"].nunique() <= 1:
        long = df.melt(id_vars=["method", "seed"], value_vars=acc_cols + ["mean accuracy"], var_name="domain",
                       value_name="accuracy")
        long["domain"] = long["domain"].str.removeprefix("acc ").replace({"mean accuracy": "mean"})
        fig, ax = plt.subplots(figsize=(13, 4))
        sns.barplot(data=long, x="domain", y="accuracy", hue="method", palette=palette, errorbar=t_interval,
                    capsize=0.1, ax=ax, err_kws={"linewidth": 1})
        budget = switched["budget"].iloc[0] if len(switched) else None
        ax.set_title("test accuracy per domain" + (f" (switched methods at budget {budget:g})" if budget else ""))
        ax.set_ylabel("test accuracy (%)")
        ax.set_ylim(0, 100)  # accuracy's range: an interval reaching past it is cut at the frame
        ax.set_xlabel("")
        ax.legend(loc="center left", bbox_to_anchor=(1.01, 0.5), fontsize=10)
        return fig
    panels = acc_cols + ["mean accuracy", "S-score"]
    fig, axes = plt.subplots(2, (len(panels) + 1) // 2, figsize=(4.2 * ((len(panels) + 1) // 2), 7), sharex=True)
    for i, (ax, col) in enumerate(zip(axes.flat, panels)):
        sns.lineplot(data=switched, x="budget", y=col, hue="method", style="method", markers=True, dashes=False,
                     palette=palette, errorbar=t_interval, ax=ax, legend=i == len(panels) - 1)
        for name, g in flat.groupby("method"):
            ax.axhline(g[col].mean(), color=palette[name], ls="--", lw=1, label=name)
        ax.set_title(col.removeprefix("acc ") + (" accuracy (%)" if col.startswith("acc ") else ""))
        ax.set_xlabel("budget (share of switchable weights per domain)")
        ax.set_ylabel("")
    for ax in list(axes.flat)[len(panels):]:
        ax.axis("off")
    axes.flat[len(panels) - 1].legend(loc="center left", bbox_to_anchor=(1.02, 0.5), fontsize=8)
    return fig


def mdl_pareto(df: pd.DataFrame) -> plt.Figure:
    """Mean accuracy against each cost (parameters, MACs, measured latency; × one single-domain backbone): one point
    per method and budget, the 95 % interval over seeds on accuracy, the latency's interquartile range (paired
    repeats, median over seeds) as its horizontal bar; the grey steps join the points no other point beats on both
    axes (the Pareto front: up and to the left is better)."""
    g = df.groupby(["method", "budget"])
    pts = g[["mean accuracy", "params ratio", "MACs ratio", "latency ratio", "latency q1", "latency q3"]].agg(
        {"mean accuracy": "mean", "params ratio": "mean", "MACs ratio": "mean", "latency ratio": "median",
         "latency q1": "median", "latency q3": "median"})
    pts["ci"] = g["mean accuracy"].agg(half_width).fillna(0.0)
    pts = pts.reset_index()
    palette = method_palette(pts["method"])
    fig, axes = plt.subplots(1, 3, figsize=(12, 4.2), sharey=True)
    for ax, col in zip(axes, ("params ratio", "MACs ratio", "latency ratio")):
        front = pts.sort_values([col, "mean accuracy"], ascending=[True, False])
        best, keep = -np.inf, []
        for _, r in front.iterrows():
            if r["mean accuracy"] > best:
                keep.append(r)
                best = r["mean accuracy"]
        if len(keep) > 1:
            fr = pd.DataFrame(keep)
            ax.step(fr[col], fr["mean accuracy"], where="post", color="0.75", lw=2, zorder=0, label="Pareto front")
        for _, r in pts.iterrows():
            xerr = None
            if col == "latency ratio":
                xerr = [[max(r[col] - r["latency q1"], 0)], [max(r["latency q3"] - r[col], 0)]]
            ax.errorbar(r[col], r["mean accuracy"], yerr=r["ci"], xerr=xerr, fmt="o", ms=7, capsize=3,
                        color=palette[r["method"]], label=r["method"])
            if pts["budget"].nunique() > 1 or r["budget"] < 1:
                ax.annotate(f"{r['budget']:g}", (r[col], r["mean accuracy"]), textcoords="offset points",
                            xytext=(5, 4), fontsize=8, color="0.3")
        ax.axvline(1.0, color="0.2", ls=":", lw=1.2)
        ax.set_xlabel(f"{col.split(' ratio')[0]} (× one single-domain backbone)")
        ax.set_title(col.split(" ratio")[0], fontsize=11)
    axes[0].set_ylabel("mean test accuracy (%)")
    _legend_below(fig, axes[-1], -0.1)
    return fig


def filter_usage_heatmaps(usage: pd.DataFrame, title: str) -> plt.Figure:
    """Domains × filters per switched block: which domain uses which filter (dark = used)."""
    blocks = list(dict.fromkeys(usage["block"]))
    fig, axes = plt.subplots(1, len(blocks), figsize=(4.5 * len(blocks), 3.0), squeeze=False)
    for ax, b in zip(axes[0], blocks):
        wide = usage[usage["block"] == b].pivot_table(index="domain", columns="filter", values="used")
        sns.heatmap(wide, cmap="mako_r", vmin=0, vmax=1, cbar=False, ax=ax, xticklabels=False)
        ax.tick_params(axis="y", rotation=0)
        ax.set_title(f"{b}: {int((wide.max() > 0).sum())}/{wide.shape[1]} filters kept", fontsize=9)
        ax.set_xlabel("filter")
        ax.set_ylabel("")
    fig.suptitle(title, y=1.1)  # above the panels' own titles
    return fig


def domain_overlap(matrix: pd.DataFrame, title: str) -> plt.Figure:
    fig, ax = plt.subplots(figsize=(4.6, 3.6))
    sns.heatmap(matrix.astype(float), annot=True, fmt=".2f", cmap="mako_r", vmin=0, vmax=1, ax=ax,
                cbar_kws={"label": "Jaccard overlap of filter sets"})
    ax.set_title(title)
    return fig


def training_time(totals: pd.DataFrame) -> plt.Figure:
    """Where the study's compute went: training minutes per kind of run (`results.run_totals`, its `all` row left
    out), longest first, with the number of runs on each bar."""
    t = totals.drop(index="all", errors="ignore").sort_values("training (min)")
    fig, ax = plt.subplots(figsize=(8, 0.32 * len(t) + 1.2))
    ax.barh(t.index, t["training (min)"], color="#4d4d4d")
    for y, (minutes, runs) in enumerate(zip(t["training (min)"], t["runs (with seeds)"])):
        ax.text(minutes, y, f" {runs} runs", va="center", fontsize=8)
    ax.set_xlabel("training time, summed over runs (min)")
    ax.set_title("where the compute went")
    return fig


# ---------------------------------------------------------------------------------------------------------------------
# Evidence: plateaus, budgets, intervals
# ---------------------------------------------------------------------------------------------------------------------
PRIMARY_TITLES = {"seg/miou": "val mIoU (%) ↑", "depth/abs_err": "val depth abs. error ↓",
                  "normal/angle_mean": "val mean normal angle (°) ↓"}


def plateau(history: pd.DataFrame, window: float = 0.1) -> plt.Figure:
    """Validation primary metrics over training, one line per seed, with the two windows the plateau criterion
    compares shaded (the last `window` of training and the `window` ending at three quarters)."""
    val = history[history["split"] == "val"]
    cols = [c for c in PRIMARY_TITLES if c in val.columns]
    fig, axes = plt.subplots(1, len(cols), figsize=(3.9 * len(cols), 3.0), squeeze=False)
    end = float(val["step"].max())
    w = window * end
    for ax, col in zip(axes[0], cols):
        sns.lineplot(data=val, x="step", y=col, hue="seed", ax=ax, palette="Greys_d", legend=ax is axes[0][0],
                     linewidth=1.2)
        for lo, hi in ((0.75 * end - w, 0.75 * end), (end - w, end)):
            ax.axvspan(lo, hi, color="#d62728", alpha=0.12, linewidth=0)
        ax.set_title(PRIMARY_TITLES[col])
        ax.set_xlabel("iteration")
        ax.set_ylabel("")
    return fig


def _method_style(methods) -> tuple[dict[str, str], dict[str, float]]:
    palette = method_palette(methods)
    width = {m: 2.6 if catalogue_role(m) == "ours" else 1.4 for m in methods}
    return palette, width


def catalogue_role(key: str) -> str:
    try:
        return catalogue.method(key).role
    except ValueError:
        return "other"


def budget_curves(summary: pd.DataFrame, values: tuple[str, ...] = ("delta_t_control", "delta_t")) -> plt.Figure:
    """Mean Δ_T ± 95 % interval against the sparse-phase length (log scale), one line per method, one panel per
    reference (the equal-training control, the dense reference). AdapMTL is drawn thick; collapsed cells hollow."""
    titles = {"delta_t_control": "Δ_T vs equal-training control (%)", "delta_t": "Δ_T vs dense reference (%)"}
    methods = list(dict.fromkeys(summary["method"]))
    palette, width = _method_style(methods)
    fig, axes = plt.subplots(1, len(values), figsize=(5.4 * len(values), 3.8), squeeze=False, sharex=True)
    for ax, value in zip(axes[0], values):
        for m in methods:
            g = summary[summary["method"] == m].sort_values("budget")
            if g[value].isna().all():  # the control has no Δ against itself
                continue
            ax.errorbar(g["budget"], g[value], yerr=g[f"{value} ci"], color=palette[m], linewidth=width[m],
                        marker="o", capsize=3, label=catalogue.label(m))
            bad = g[g["collapsed"] > 0]
            ax.scatter(bad["budget"], bad[value], s=90, facecolors="white", edgecolors=palette[m], zorder=3)
        ax.axhline(0, color="#333333", linewidth=0.8, linestyle="--")
        ax.set_xscale("log", base=2)
        ax.set_xticks(sorted(summary["budget"].unique()), [str(b) for b in sorted(summary["budget"].unique())])
        ax.set_xlabel("sparse-phase length (iterations)")
        ax.set_title(titles.get(value, value))
    _legend_below(fig, axes[0][-1], -0.12)  # the last panel draws every line, the control's too
    return fig


def validation_at_budget(history: pd.DataFrame) -> plt.Figure:
    """Each method's validation curve over the sparse phase of length B: every task's primary metric (its spec's),
    mean and 95 % interval over seeds, one panel per task, one line per method (AdapMTL thick). A curve still moving at
    its end is a run that has not converged."""
    val = history[history["split"] == "val"]
    tasks = [t for t in TASKS.names() if f"{t}/{TASKS.get(t).primary}" in val.columns
             and val[f"{t}/{TASKS.get(t).primary}"].notna().any()]
    methods = list(dict.fromkeys(val["method"]))
    palette, width = _method_style(methods)
    fig, axes = plt.subplots(1, len(tasks), figsize=(3.9 * len(tasks), 3.2), squeeze=False)
    for ax, task in zip(axes[0], tasks):
        metric = TASKS.get(task).primary
        for m in methods:
            sns.lineplot(data=val[val["method"] == m], x="step", y=f"{task}/{metric}", ax=ax, errorbar=t_interval,
                         color=palette[m], linewidth=width[m], label=catalogue.label(m), legend=False)
        ax.set_title(f"{TASK_TITLES.get(task, task)}: {metric} ({'↑' if dict(METRICS[task])[metric] > 0 else '↓'})",
                     fontsize=9)
        ax.set_xlabel("iteration of the sparse phase")
        ax.set_ylabel(f"validation {metric}")
    _legend_below(fig, axes[0][-1], -0.18)
    return fig


def intervals(table: pd.DataFrame, values: tuple[str, ...] = ("delta_t_control", "delta_t"),
              label: str = "label") -> plt.Figure:
    """A forest plot: each row's mean Δ_T with its 95 % interval, per reference; AdapMTL highlighted, collapsed rows
    grey (they are not ranked)."""
    titles = {"delta_t_control": "Δ_T vs equal-training control (%)", "delta_t": "Δ_T vs dense reference (%)"}
    rows = table.reset_index(drop=True)
    fig, axes = plt.subplots(1, len(values), figsize=(4.6 * len(values), 0.42 * len(rows) + 1.2), squeeze=False,
                             sharey=True)
    palette, width = _method_style(list(rows["method"]))
    y = np.arange(len(rows))[::-1]
    for ax, value in zip(axes[0], values):
        for yi, (_, r) in zip(y, rows.iterrows()):
            colour = "#bbbbbb" if r.get("collapsed", 0) else palette[r["method"]]
            ax.errorbar(r[value], yi, xerr=r[f"{value} ci"], fmt="o", color=colour, capsize=3,
                        markersize=7 if width[r["method"]] > 2 else 5, linewidth=width[r["method"]])
        ax.axvline(0, color="#333333", linewidth=0.8, linestyle="--")
        ax.set_title(titles.get(value, value))
        ax.set_yticks(y, rows[label])
    return fig
