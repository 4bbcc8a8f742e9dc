"""The house style (seaborn) and every figure of the book. Functions return figures; they never call `show()`."""

from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import seaborn as sns
import torch
from matplotlib.colors import ListedColormap

from .data.rooms import NYU13_CLASSES

TASK_TITLES = {"seg": "Semantic segmentation", "depth": "Depth", "normal": "Surface normals"}


def set_style() -> None:
    sns.set_theme(context="notebook", style="whitegrid", palette="colorblind", font_scale=0.95)
    plt.rcParams.update({"figure.dpi": 110, "savefig.dpi": 110, "axes.titleweight": "bold",
                         "figure.constrained_layout.use": True})


set_style()
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
            sns.lineplot(data=sub, x="step", y=f"loss/{task}", ax=ax, label=split, linestyle=style, errorbar="sd")
        ax.set_title(TASK_TITLES.get(task, task))
        ax.set_xlabel("iteration")
        ax.set_ylabel("loss")
    return fig


def validation_metrics(history: pd.DataFrame, metrics: list[str]) -> plt.Figure:
    """Chosen validation metrics over training (columns like `seg/miou`)."""
    val = history[history["split"] == "val"]
    fig, axes = plt.subplots(1, len(metrics), figsize=(3.6 * len(metrics), 3.0), squeeze=False)
    for ax, col in zip(axes[0], metrics):
        sns.lineplot(data=val, x="step", y=col, ax=ax, errorbar="sd", marker="o")
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
