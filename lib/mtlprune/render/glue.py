"""Numbers for the prose: every number a chapter's text quotes is glued from the runs (myst-nb `glue`), never typed."""

from __future__ import annotations

from typing import Any

import pandas as pd
from myst_nb import glue

from ..core import catalogue
from ..study.profiles import make_config
from ..study.stats import fmt_interval, half_width, interval, unconverged, verdict


def glue_value(name: str, value: Any) -> None:
    """Glue one number or word for the prose (numbers in text always come from the runs)."""
    glue(name, value, display=False)


def glue_metrics(prefix: str, table: pd.DataFrame) -> None:
    """Glue every (task, metric) mean of a `metric_summary` table as `<prefix>_<task>_<metric>` for the prose."""
    for (task, metric), row in table.iterrows():
        glue_value(f"{prefix}_{task}_{metric}", float(row["mean"]))


def glue_budget(conv: pd.DataFrame, chosen: int | None, profile: str, stability: pd.DataFrame | None = None,
                prefix: str = "budget") -> None:
    """Glue the budget chapter's reading (`<prefix>_*`): the profile's sparse-phase length B, the measured one (the
    smallest at which doubling moves no value, `stats.choose_budget`), whether they agree, the methods that still move
    when the profile's B doubles, the largest such change, and (with `stability`) Kendall's τ between the rankings at
    B and 2B."""
    used = make_config(profile, "adapmtl", 0.9).train.iterations
    glue_value(f"{prefix}_profile", used)
    glue_value(f"{prefix}_chosen", "none of the grid" if chosen is None else chosen)
    if chosen is None:
        agreement = ("no length of the grid has converged yet: the verdicts that rest on this sparse phase are "
                     "undetermined")
    elif chosen == used:
        agreement = "the two agree"
    elif chosen < used:
        agreement = "the profile's B is longer than needed, which is safe"
    else:
        agreement = "the profile's B is SHORTER than the measurement asks: its verdicts are undetermined"
    glue_value(f"{prefix}_agreement", agreement)
    moving = unconverged(conv, used)
    glue_value(f"{prefix}_moving", ", ".join(catalogue.label(m) for m in moving) or "none")
    at = conv[conv["budget"] == used]
    glue_value(f"{prefix}_max_change", float(at["change"].abs().max()) if len(at) else float("nan"))
    if stability is not None:
        row = stability[stability["from"] == used]
        glue_value(f"{prefix}_tau", float(row.iloc[0]["kendall_tau"]) if len(row) else float("nan"))


def glue_plateau(plateaus: pd.DataFrame, cfg: Any, prefix: str) -> None:
    """Glue a dense reference's plateau reading (`evidence.plateau_table`): `<prefix>_plateau_holds` ("k of n" seeds)
    and `<prefix>_iterations`."""
    glue_value(f"{prefix}_plateau_holds", f"{(plateaus.iloc[:, -1] == 'yes').sum()} of {len(plateaus)}")
    glue_value(f"{prefix}_iterations", cfg.train.iterations)


def glue_doubling(conv: pd.DataFrame, prefix: str) -> None:
    """Glue a dense reference's doubling test (`stats.convergence` of `evidence.dense_doubling_records`):
    `<prefix>_doubling_length`, `_double`, `_change` (mean Δ_T at 2L against L, points), `_ci` (its interval at 2L)
    and `_doubling` (`passes` / `FAILS`, in words)."""
    nan = float("nan")
    row = conv.iloc[0] if len(conv) else pd.Series({"budget": 0, "double": 0, "change": nan, "ci 2b": nan,
                                                    "converged": False})  # not run: it fails
    glue_value(f"{prefix}_doubling_length", int(row["budget"]))
    glue_value(f"{prefix}_double", int(row["double"]))
    glue_value(f"{prefix}_doubling_change", float(row["change"]))
    glue_value(f"{prefix}_doubling_ci", float(row["ci 2b"]))
    glue_value(f"{prefix}_doubling", "passes" if bool(row["converged"]) else "FAILS")


def glue_board(board: pd.DataFrame, prefix: str) -> None:
    """Glue a leaderboard (`evidence.comparison_table`): `<prefix>_ours_rank`, `_ranked` (rows ranked), `_ours`
    (Δ_T ± interval), `_top` and `_top_value` (the first-ranked row), and `_better` / `_tied` / `_worse` (how many
    other rows `ours` is ahead of, tied with, behind)."""
    by, ours = board.attrs["by"], board.attrs["ours"]
    ranked = board[board["rank"] != "–"]
    mine = board[board[by] == ours]
    glue_value(f"{prefix}_ours_rank", str(mine["rank"].iloc[0]) if len(mine) else "–")
    glue_value(f"{prefix}_ranked", len(ranked))
    glue_value(f"{prefix}_ours", mine["Δ_T vs control"].iloc[0] if len(mine) else "–")
    top = ranked.iloc[0] if len(ranked) else None
    glue_value(f"{prefix}_top", top[by] if top is not None else "–")
    glue_value(f"{prefix}_top_value", top["Δ_T vs control"] if top is not None else "–")
    if ours is not None and f"{ours} is" in board:  # where ours stands against the other rows, counted
        calls = list(board.loc[board[by] != ours, f"{ours} is"])
        for word in ("better", "tie", "worse"):
            glue_value(f"{prefix}_{'tied' if word == 'tie' else word}", calls.count(word))


VERDICT_WORDS = {"better": "ahead of", "worse": "behind", "tie": "tied with", "–": "–"}


def glue_rows(board: pd.DataFrame, prefix: str, rows: dict[str, str]) -> None:
    """Glue named rows of a leaderboard that has an `ours` column: `<prefix>_<name>` (Δ_T vs control ± interval) and
    `<prefix>_<name>_is` (where `ours` stands against the row: ahead of / behind / tied with). `rows`: name -> the
    row's label. A row missing from the board is an error naming it."""
    by, ours = board.attrs["by"], board.attrs["ours"]
    for name, label in rows.items():
        row = board[board[by] == label]
        if row.empty:
            raise ValueError(f"no row {label!r} in the leaderboard (rows: {list(board[by])})")
        glue_value(f"{prefix}_{name}", row["Δ_T vs control"].iloc[0])
        glue_value(f"{prefix}_{name}_is", VERDICT_WORDS[row[f"{ours} is"].iloc[0]])


def glue_precision(cfg: Any, table: pd.DataFrame | None) -> None:
    """Glue the dense reference's precision (`dense_precision`) and one sentence on what it changes
    (`dense_precision_effect`): against its float32 twin (`evidence.precision_table`), on how many test metrics the
    two tie and which differ; for a float32 run, that there is nothing to compare."""
    glue_value("dense_precision", cfg.train.precision)
    if table is None:
        glue_value("dense_precision_effect", "These runs are float32, the reference precision: there is nothing to "
                                             "compare.")
        return
    differ = [f"{task} {metric} ({row['verdict']})" for (task, metric), row in table.iterrows()
              if row["verdict"] != "tie"]
    glue_value("dense_precision_effect",
               f"Trained again in float32 with the same seeds, the two tie on {(table['verdict'] == 'tie').sum()} of "
               f"{len(table)} test metrics (paired 95 % intervals over seeds)"
               + (f"; they differ on {', '.join(differ)}." if differ else "."))


def glue_claims(claims: list[dict[str, Any]], names: list[str]) -> None:
    """Glue each claim's verdict, its sentence and numbers as `find_<name>_verdict`, `find_<name>_words` and
    `find_<name>_<key>` for the prose."""
    for name, c in zip(names, claims):
        glue_value(f"find_{name}_verdict", c["verdict"])
        glue_value(f"find_{name}_words", c["words"])
        for k, v in c["_glue"].items():
            glue_value(f"find_{name}_{k}", v)


def glue_headline(df: pd.DataFrame, budget: float, method: str) -> None:
    """Glue the numbers the resolve note and the prose quote: at `budget`, `method`'s mean accuracy (± 95 % interval)
    against the individual networks', and its params, MACs and latency ratios (latency: the median ratio and the
    median interquartile range over seeds)."""
    ours = df[(df["method"] == method) & (df["budget"] == budget)]
    ind = df[df["method"] == catalogue.mdl_method("individual").label]
    if ours.empty:
        raise ValueError(f"no runs of {method!r} at budget {budget}")
    glue_value("mdl_budget_pct", f"{budget:.0%}")
    glue_value("mdl_method", method)
    for name, frame in (("ours", ours), ("ind", ind)):
        glue_value(f"mdl_{name}_acc", float(frame["mean accuracy"].mean()))
        glue_value(f"mdl_{name}_acc_sd", half_width(frame["mean accuracy"]))
        glue_value(f"mdl_{name}_s", float(frame["S-score"].mean()))
    for col, key in (("params ratio", "params"), ("MACs ratio", "macs"), ("latency ratio", "latency"),
                     ("latency IQR", "latency_iqr"), ("union", "union")):
        glue_value(f"mdl_ours_{key}", float(ours[col].mean()))
    glue_value("mdl_ind_params", float(ind["params ratio"].mean()))


def glue_sharing(df: pd.DataFrame, budget: float, method: str) -> pd.DataFrame:
    """What the sharing term buys at `budget`: `method` (with sharing) against BA² (the same switches and budget,
    no sharing term). Glues the union of the domains' filter sets, the parameters deployed, the MACs and the mean
    accuracy (± 95 % interval) of both, and the accuracy verdict (`evidence.verdict`: a tie unless the intervals
    separate); returns the two rows."""
    ba2 = catalogue.mdl_method("ba2").label
    rows, iv = [], {}
    for key, name in (("share", method), ("noshare", ba2)):
        frame = df[(df["method"] == name) & (df["budget"] == budget)]
        if frame.empty:
            raise ValueError(f"no runs of {name!r} at budget {budget}: the sharing reading needs both")
        iv[key] = interval(frame["mean accuracy"])
        row = {"method": name, "seeds": len(frame),
               "mean accuracy (%)": fmt_interval(iv[key]["mean"], iv[key]["ci"], 1, signed=False),
               "union": round(float(frame["union"].mean()), 2),
               "params ×": round(float(frame["params ratio"].mean()), 2),
               "MACs ×": round(float(frame["MACs ratio"].mean()), 2)}
        rows.append(row)
        for col, short in (("union", "union"), ("params ratio", "params"), ("MACs ratio", "macs")):
            glue_value(f"mdl_{key}_{short}", float(frame[col].mean()))
        glue_value(f"mdl_{key}_acc", iv[key]["mean"])
        glue_value(f"mdl_{key}_acc_ci", iv[key]["ci"])
    glue_value("mdl_sharing_verdict", VERDICT_WORDS[verdict(iv["share"], iv["noshare"])])
    return pd.DataFrame(rows)
