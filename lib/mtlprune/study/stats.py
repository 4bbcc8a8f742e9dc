"""Statistics of the study, apart from training (this module imports no trainer): intervals over seeds, verdicts
that call a tie a tie, summaries per group, how a ranking moves between two budgets and the budget chosen from that,
and the plateau criterion of a training curve.

Conventions (stated in the book, `conventions.md`):
- Interval: mean ± the 95 % Student-t half-width over seeds (n − 1 degrees of freedom); n < 2 has no interval.
- A difference is called only where the two intervals do not overlap; otherwise the verdict is `tie`.
- Plateau: Δp (LibMTL's mean relative change, %) between the validation metrics averaged over the last `window` of
  training and over the `window` ending at three quarters (for one accuracy series: its relative change); the run is
  at a plateau when its absolute value is below `PLATEAU_TOLERANCE` (1 %).
- Budget: the smallest sparse-phase length b at which doubling moves no value: for every method (and the
  equal-training control) the mean Δ_T at 2b differs from the one at b by less than the 95 % half-width at 2b and by
  less than `CONVERGENCE_POINTS` (3) points, no seed collapsed at either length (`convergence`, `choose_budget`). A
  pruned method is read against the control, the control against the dense reference. How the ranking moves (Kendall
  τ, separated pairs that swap) is shown beside it (`budget_stability`), but it does not choose B.
"""

from __future__ import annotations

import itertools
import math
from typing import Any, Iterable

import numpy as np
import pandas as pd
from scipy import stats as sps

from ..core import catalogue
from ..core.metrics import METRICS, delta_p

LEVEL = 0.95
PLATEAU_TOLERANCE = 1.0  # % change over the last quarter of training


def half_width(values: Iterable[float], level: float = LEVEL) -> float:
    """The Student-t half-width of the mean's `level` interval (NaN below two values)."""
    x = np.asarray([v for v in values if v is not None and np.isfinite(v)], dtype=float)
    if x.size < 2:
        return float("nan")
    return float(sps.t.ppf(0.5 + level / 2, x.size - 1) * x.std(ddof=1) / math.sqrt(x.size))


def interval(values: Iterable[float], level: float = LEVEL) -> dict[str, float]:
    x = [float(v) for v in values if v is not None and np.isfinite(v)]
    mean = float(np.mean(x)) if x else float("nan")
    h = half_width(x, level)
    return {"mean": mean, "ci": h, "lo": mean - h, "hi": mean + h, "n": len(x)}


def verdict(a: dict[str, float], b: dict[str, float], higher_is_better: bool = True) -> str:
    """`better` / `worse` when the intervals of a and b do not overlap (from a's side), else `tie`. Without an
    interval (n < 2) nothing is called: `tie`."""
    if not (np.isfinite(a["ci"]) and np.isfinite(b["ci"])):
        return "tie"
    if a["lo"] > b["hi"]:
        return "better" if higher_is_better else "worse"
    if a["hi"] < b["lo"]:
        return "worse" if higher_is_better else "better"
    return "tie"


def iv_of(row: pd.Series, value: str) -> dict[str, float]:
    """The interval of `value` in a `summarize` row."""
    return {"mean": row[value], "ci": row[f"{value} ci"], "lo": row[f"{value} lo"], "hi": row[f"{value} hi"]}


def summarize(df: pd.DataFrame, by: list[str], values: Iterable[str] = ("delta_t", "delta_t_control")) -> pd.DataFrame:
    """Mean, interval half-width and n of each value per group; `collapsed` = seeds flagged as collapsed."""
    out = []
    for key, g in df.groupby(by, sort=False):
        key = key if isinstance(key, tuple) else (key,)
        row = dict(zip(by, key))
        for v in values:
            iv = interval(g[v])
            row.update({v: iv["mean"], f"{v} ci": iv["ci"], f"{v} lo": iv["lo"], f"{v} hi": iv["hi"]})
        row["n"] = len(g)
        row["collapsed"] = int((g["collapsed"] != "").sum()) if "collapsed" in g else 0
        out.append(row)
    return pd.DataFrame(out)


def ranking_change(summary: pd.DataFrame, a: Any, b: Any, value: str = "delta_t_control",
                   key: str = "budget") -> dict[str, Any]:
    """How the method ranking by mean `value` moves from `key` = a to `key` = b (e.g. budgets b and 2b): Kendall τ of
    the two rankings, the pairs that swap order while their intervals separate at a or at b (a real change), and the
    pairs tied at both. Collapsed methods are left out."""
    sa = summary[(summary[key] == a) & (summary["collapsed"] == 0)].set_index("method")
    sb = summary[(summary[key] == b) & (summary["collapsed"] == 0)].set_index("method")
    methods = [m for m in sa.index if m in sb.index]
    tau = float(sps.kendalltau(sa.loc[methods, value], sb.loc[methods, value]).statistic) if len(methods) > 1 \
        else float("nan")
    swaps, ties = [], []
    for m, n in itertools.combinations(methods, 2):
        before = np.sign(sa.loc[m, value] - sa.loc[n, value])
        after = np.sign(sb.loc[m, value] - sb.loc[n, value])
        sep_a = verdict(iv_of(sa.loc[m], value), iv_of(sa.loc[n], value)) != "tie"
        sep_b = verdict(iv_of(sb.loc[m], value), iv_of(sb.loc[n], value)) != "tie"
        if before != after and (sep_a or sep_b):
            swaps.append(f"{catalogue.label(m)} / {catalogue.label(n)}")
        if not sep_a and not sep_b:
            ties.append(f"{catalogue.label(m)} / {catalogue.label(n)}")
    everyone = set(summary.loc[summary[key].isin([a, b]), "method"])
    return {"from": a, "to": b, "methods": len(methods), "complete": len(methods) == len(everyone) >= 2,
            "kendall_tau": tau, "swaps": swaps, "ties": ties}


def budget_stability(summary: pd.DataFrame, value: str = "delta_t_control") -> pd.DataFrame:
    """`ranking_change` between every budget and the next (each the double of the last in the study's grids)."""
    budgets = sorted(summary["budget"].unique())
    rows = [ranking_change(summary, a, b, value) for a, b in zip(budgets, budgets[1:])]
    return pd.DataFrame(rows)


CONVERGENCE_POINTS = 3.0  # Δ_T points: doubling the sparse phase must move a mean by less than this (and its interval)


def convergence(summary: pd.DataFrame, points: float = CONVERGENCE_POINTS) -> pd.DataFrame:
    """For every method and sparse-phase length b whose double 2b is in `summary` (`summarize` by method and
    budget): its mean Δ_T ± 95 % half-width at b and at 2b, the change, and `converged`: the change is smaller than
    the half-width at 2b and than `points`, with no collapsed seed at either length. The control (no Δ against
    itself) is read against the dense reference, every pruned method against the control."""
    rows = []
    for method, g in summary.groupby("method", sort=False):
        value = "delta_t" if g["delta_t_control"].isna().all() else "delta_t_control"
        by = g.drop_duplicates("budget").set_index("budget")
        for b in sorted(by.index):
            if 2 * b not in by.index:
                continue
            at, dbl = by.loc[b], by.loc[2 * b]
            change, ci = float(dbl[value] - at[value]), float(dbl[f"{value} ci"])
            ok = bool(np.isfinite(change) and np.isfinite(ci) and abs(change) < ci and abs(change) < points
                      and at["collapsed"] == 0 and dbl["collapsed"] == 0)
            rows.append({"method": method, "budget": int(b), "double": int(2 * b),
                         "against": "dense reference" if value == "delta_t" else "control",
                         "mean": float(at[value]), "ci": float(at[f"{value} ci"]), "mean 2b": float(dbl[value]),
                         "ci 2b": ci, "change": change, "converged": ok})
    return pd.DataFrame(rows, columns=["method", "budget", "double", "against", "mean", "ci", "mean 2b", "ci 2b",
                                       "change", "converged"])


def choose_budget(conv: pd.DataFrame) -> int | None:
    """The smallest length b at which every method of `convergence` (the control included) has converged; None when
    no length of the grid qualifies."""
    everyone = set(conv["method"])
    for b, g in conv.groupby("budget"):
        if set(g["method"]) == everyone and bool(g["converged"].all()):
            return int(b)
    return None


def unconverged(conv: pd.DataFrame, budget: int) -> list[str]:
    """The methods whose mean Δ_T still moves when `budget` doubles (or that were not run at it and its double)."""
    at = conv[conv["budget"] == budget]
    missing = sorted(set(conv["method"]) - set(at["method"])) if len(conv) else ["every method"]
    return [*at.loc[~at["converged"], "method"], *missing]


def _window_means(frame: pd.DataFrame, columns: list[str], window: float) -> tuple[pd.Series, pd.Series]:
    """The mean of `columns` over the `window` (fraction of training) ending at 3/4 of it and over the last one (the
    nearest earlier point when a window holds none)."""
    frame = frame.sort_values("step")
    if frame.empty:
        raise ValueError("the run logged no validation metrics: no plateau can be measured")
    end = float(frame["step"].max())
    w = max(window * end, 1.0)

    def upto(t: float) -> pd.Series:
        part = frame[(frame["step"] > t - w) & (frame["step"] <= t)]
        return (part if len(part) else frame[frame["step"] <= t].tail(1))[columns].mean()

    return upto(0.75 * end), upto(end)


def plateau(history: pd.DataFrame, tasks: Iterable[str], window: float = 0.1) -> dict[str, float]:
    """Δp (%) between the validation metrics averaged over the last `window` of training and over the `window`
    ending at 3/4 of it; `holds` when below `PLATEAU_TOLERANCE` in absolute value."""
    val = history[history["split"] == "val"]
    cols = {t: [f"{t}/{m}" for m, _ in METRICS[t]] for t in tasks}
    before, last = _window_means(val, [c for cs in cols.values() for c in cs], window)
    as_metrics = lambda v: {t: {c.split("/")[1]: float(v[c]) for c in cs} for t, cs in cols.items()}  # noqa: E731
    gain = delta_p(as_metrics(last), as_metrics(before))["mean"]
    return {"gain": gain, "tolerance": PLATEAU_TOLERANCE, "holds": abs(gain) < PLATEAU_TOLERANCE,
            "steps": float(val["step"].max())}


def series_plateau(steps: Iterable[float], values: Iterable[float], window: float = 0.1) -> dict[str, Any]:
    """`plateau` for one higher-is-better series (e.g. a mean validation accuracy): its relative change (%) between
    the mean over the last `window` of training and over the `window` ending at 3/4 of it."""
    frame = pd.DataFrame({"step": list(steps), "value": list(values)}, dtype=float)
    before, last = _window_means(frame, ["value"], window)
    a, b = float(before["value"]), float(last["value"])
    gain = 100.0 * (b - a) / abs(a) if a else float("inf")
    return {"gain": gain, "tolerance": PLATEAU_TOLERANCE, "holds": abs(gain) < PLATEAU_TOLERANCE,
            "steps": float(frame["step"].max())}


def fmt_interval(mean: float, ci: float, digits: int = 1, signed: bool = True, unit: str = "") -> str:
    """Mean ± 95 % interval half-width as every table and sentence of the book prints it: `–` without a mean, the
    mean alone without an interval (fewer than two seeds)."""
    if mean is None or not np.isfinite(mean):
        return "–"
    head = f"{mean:+.{digits}f}" if signed else f"{mean:.{digits}f}"
    return head + (f" ± {ci:.{digits}f}" if ci is not None and np.isfinite(ci) else "") + unit
