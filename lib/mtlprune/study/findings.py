"""The Findings page: for each claim of the two papers, a verdict (reproduced / not reproduced / tie) computed from the
runs with the conventions of `evidence` (95 % Student-t intervals over seeds; a difference only where intervals do not
overlap; collapsed runs never win), the numbers behind it, and the profile it rests on.

Claims (as the papers state them):
1. AdapMTL beats SNIP, LTH, IMP and DiSparse at 90 % sparsity (AdapMTL paper, Table 1).
2. AdapMTL keeps the shared backbone denser than the task heads (its allocation figures).
3. Adaptive task weighting helps AdapMTL (its ablation): against static task weights tuned on the validation split.
A multi-task verdict is only called where the sparse phase has converged (`at_budget`); elsewhere it reads
`undetermined at this budget`.
4. The budget-aware multi-domain network beats its baselines with fewer parameters and FLOPs than one single-domain
   network (dos Santos et al.).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from ..core import catalogue
from ..core.data.datasets import dataset_spec
from ..core.tasks import TASKS
from .design import CAUSES, CLAIMS, FINDINGS_CLAIMS, PAPER_BASELINES, TUNED
from .evidence import dense_convergence, records
from .grids import check_seeds, default_seeds, doubling_budgets, tuned_weighting
from .multidomain import results as multidomain_results
from .profiles import dataset_overrides, make_config, make_mdl_config
from .stats import CONVERGENCE_POINTS, convergence, fmt_interval, interval, summarize, unconverged, verdict

VALUE = "delta_t_control"


def _overall(calls: list[str]) -> str:
    """reproduced when every comparison favours the claim, not reproduced when any goes against it, else tie."""
    if calls and all(c == "better" for c in calls):
        return "reproduced"
    if any(c == "worse" for c in calls):
        return "not reproduced"
    return "tie"


def _iv_text(iv: dict[str, float], unit: str = "") -> str:
    return fmt_interval(iv["mean"], iv["ci"], unit=unit)


def _pct(iv: dict[str, float], unit: str = "") -> str:
    """An unsigned level (a sparsity or an accuracy, %) with its interval."""
    return fmt_interval(iv["mean"], iv["ci"], signed=False, unit=unit)


def _run_interval(rec: pd.DataFrame, method: str, value: str = VALUE) -> dict[str, float]:
    g = rec[rec["method"] == method]
    iv = interval(g[value])
    iv["collapsed"] = int((g["collapsed"] != "").sum())
    return iv


def claim_baselines(rec: pd.DataFrame, ours: str = "adapmtl", dataset: str = "nyuv2") -> dict[str, Any]:
    """AdapMTL against the paper's baselines on `dataset` (its runs in `rec`): better, tied or worse per baseline."""
    o = _run_interval(rec, ours)
    calls, parts = [], [f"AdapMTL {_iv_text(o)}"]
    for b in PAPER_BASELINES:
        iv = _run_interval(rec, b)
        if iv["n"] == 0:
            continue
        if o["collapsed"] and iv["collapsed"]:
            call = "tie"  # both at chance: nothing to tell them apart
        elif o["collapsed"]:
            call = "worse"
        elif iv["collapsed"]:
            call = "better"
        else:
            call = verdict(o, iv)
        calls.append(call)
        parts.append(f"{catalogue.label(b)} {_iv_text(iv)}{' (collapsed)' if iv['collapsed'] else ''}: "
                     f"{'tie' if call == 'tie' else 'AdapMTL ' + call}")
    where = "" if dataset == "nyuv2" else f" on {dataset_spec(dataset).title}"
    n = {c: sum(x == c for x in calls) for c in ("better", "tie", "worse")}
    words = (f"At 90 % sparsity{where} AdapMTL's Δ_T against the equal-training control is {_iv_text(o)} %; of the "
             f"{len(calls)} paper baselines it is ahead of {n['better']}, tied with {n['tie']} and behind "
             f"{n['worse']}.")
    return {"claim": f"AdapMTL beats SNIP, LTH, IMP and DiSparse at 90 % sparsity{where}", "verdict": _overall(calls),
            "evidence": "Δ_T vs equal-training control (%): " + "; ".join(parts), "words": words,
            "_glue": {"ours": o["mean"], "ours_ci": o["ci"],
                      "better": sum(c == "better" for c in calls), "tied": sum(c == "tie" for c in calls),
                      "worse": sum(c == "worse" for c in calls), "compared": len(calls)},
            "setting": "multi-task" if dataset == "nyuv2" else dataset}


def claim_backbone(rec: pd.DataFrame, ours: str = "adapmtl") -> dict[str, Any]:
    g = rec[rec["method"] == ours]
    heads = [c for c in g.columns if c.startswith("sparsity ") and c.removeprefix("sparsity ") in TASKS]  # the heads
    backbone = interval(100 * g["sparsity backbone"])
    head = interval(100 * g[heads].mean(axis=1))
    call = verdict(head, backbone)  # "better" = heads sparser than the backbone, as the claim says
    return {"claim": "AdapMTL keeps the backbone denser than the task heads", "verdict": _overall([call]),
            "evidence": f"achieved sparsity (%): backbone {_pct(backbone)}, mean of the heads {_pct(head)}",
            "words": f"Its backbone ends at {_pct(backbone)} % zeros against {_pct(head)} % on average in the heads.",
            "_glue": {"backbone": backbone["mean"], "heads": head["mean"]}}


def claim_weighting(rec: pd.DataFrame, tuned_choice: str = "") -> dict[str, Any]:
    """Adaptive weighting against the best static weights (chosen on validation, `plan.tuned_weighting`), on the
    records of the labelled runs (`CAUSES` and the `TUNED` pairs); plain equal weights are shown too."""
    labels = list(CAUSES)
    adaptive, equal = labels[0], labels[1]
    a = interval(rec[rec["label"] == adaptive][VALUE])
    e = interval(rec[rec["label"] == equal][VALUE])
    t = interval(rec[rec["label"] == TUNED][VALUE]) if (rec["label"] == TUNED).any() else e
    call = verdict(a, t)
    chosen = f" ({tuned_choice})" if tuned_choice else ""
    return {"claim": "Adaptive task weighting helps AdapMTL", "verdict": _overall([call]),
            "evidence": f"Δ_T vs control (%): adaptive {_iv_text(a)}; static weights tuned on validation{chosen} "
                        f"{_iv_text(t)}; plain equal weights {_iv_text(e)}",
            "words": f"Δ_T against the control is {_iv_text(a)} % with AdapMTL's adaptive task weights, against "
                     f"{_iv_text(t)} % with the best static weights chosen on the validation split "
                     f"({tuned_choice or 'equal'}) and {_iv_text(e)} % with plain equal weights.",
            "_glue": {"adaptive": a["mean"], "tuned": t["mean"], "equal": e["mean"],
                      "tuned_choice": tuned_choice or "equal"}}


def claim_multidomain(mdl: pd.DataFrame, budget: float = 0.5) -> dict[str, Any]:
    ours_label = [m for m in mdl["method"].unique() if m.startswith(catalogue.mdl_method("budget_aware").label)]
    o = mdl[(mdl["method"].isin(ours_label)) & (mdl["budget"] == budget)]
    oi = interval(o["mean accuracy"])
    calls, parts = [], [f"budget-aware {_pct(oi, ' %')}"]
    for key in ("individual", "frozen", "ba2"):
        lab = catalogue.mdl_method(key).label
        g = mdl[(mdl["method"].str.startswith(lab)) & ((mdl["budget"] == budget) | ~mdl["switched"])]
        if g.empty:
            continue
        iv = interval(g["mean accuracy"])
        call = verdict(oi, iv)
        calls.append(call)
        parts.append(f"{lab} {_pct(iv, ' %')} ({'tie' if call == 'tie' else call})")
    params, macs = float(o["params ratio"].mean()), float(o["MACs ratio"].mean())
    cheaper = params < 1 and macs < 1
    verdict_ = _overall(calls) if cheaper else "not reproduced"
    return {"claim": "The budget-aware multi-domain network beats its baselines with fewer parameters and FLOPs than "
                     "one single-domain network",
            "verdict": verdict_,
            "evidence": f"mean test accuracy at budget {budget:g}: " + "; ".join(parts)
                        + f". Cost: {params:.2f}× the parameters and {macs:.2f}× the MACs of one backbone",
            "words": f"At budget {budget:g} the pruned multi-domain network reaches {_pct(oi)} % mean accuracy "
                     f"with {params:.2f} × the parameters and {macs:.2f} × the MACs of one single-domain network.",
            "_glue": {"acc": oi["mean"], "params": params, "macs": macs}, "setting": "multi-domain"}


UNDETERMINED = "undetermined at this budget"


def at_budget(claim: dict[str, Any], conv: pd.DataFrame, budget: int,
              dense_conv: pd.DataFrame | None = None) -> dict[str, Any]:
    """`claim` if its sparse phase of `budget` iterations has converged for every method the budget grid measured
    (`stats.convergence`: doubling it moves no mean Δ_T beyond its interval or 3 points) and, where `dense_conv` is
    given, the dense reference passes the same doubling test at its length; else the same claim with the verdict
    `undetermined at this budget` and what still moves named: a comparison of results that have not converged says
    how fast methods recover, not where they end."""
    moving = unconverged(conv, budget)
    reasons = []
    if moving:
        names = ", ".join(catalogue.label(m) for m in moving)
        reasons.append(f"doubling the sparse phase ({budget} → {2 * budget} iterations) still moves {names} by more "
                       f"than its 95 % interval or {CONVERGENCE_POINTS:g} points")
    if dense_conv is not None:
        length = int(dense_conv["budget"].min()) if len(dense_conv) else 0
        if not len(dense_conv) or unconverged(dense_conv, length):
            reasons.append(f"doubling the dense reference ({length} → {2 * length} iterations) moves its Δ_T by "
                           f"more than its 95 % interval or {CONVERGENCE_POINTS:g} points" if len(dense_conv)
                           else "the dense reference's doubling test has not run")
    if not reasons:
        return claim
    return {**claim, "verdict": UNDETERMINED, "evidence": f"{claim['evidence']}. Not called: {'; '.join(reasons)}"}


NOT_READ = "not read in this profile"


def not_read(name: str, profile: str) -> dict[str, Any]:
    """The placeholder of a claim `profile` does not read (`design.FINDINGS_CLAIMS`)."""
    return {"claim": _TITLES[name], "verdict": NOT_READ, "evidence": "–", "_glue": {},
            "words": f"The {profile} profile does not read this claim; the standard profile does."}


_TITLES = {"baselines": "AdapMTL beats SNIP, LTH, IMP and DiSparse at 90 % sparsity",
           "backbone": "AdapMTL keeps the backbone denser than the task heads",
           "weighting": "Adaptive task weighting helps AdapMTL",
           "second": "AdapMTL beats SNIP, LTH, IMP and DiSparse at 90 % sparsity on a second dataset",
           "mdl": "The budget-aware multi-domain network beats its baselines with fewer parameters and FLOPs than one "
                  "single-domain network"}


def read(grids_: dict[str, list[Any]], profile: str, mdl_budget: float = 0.5,
         second_dataset: str = "taskonomy") -> dict[str, dict[str, Any]]:
    """Every claim of `CLAIMS` by name, from the completed runs of `grids.findings_grids` (the same arguments): each
    multi-task claim held to the doubling tests of its sparse phase and its dense reference (`at_budget`); a claim the
    profile does not read is `not_read`."""
    claims = FINDINGS_CLAIMS[profile]
    b = doubling_budgets(profile)[0]
    out: dict[str, dict[str, Any]] = {}
    if grids_["comparison"]:
        rec = records(grids_["comparison"])
        conv = convergence(summarize(records(grids_["budget"]), ["method", "budget"]))
        dense = dense_convergence(grids_["dense_doubling"])
        out["baselines"] = at_budget(claim_baselines(rec), conv, b, dense)
        out["backbone"] = at_budget(claim_backbone(rec), conv, b, dense)
        if grids_["candidates"]:
            choice, tuned = tuned_weighting(grids_["candidates"])
            out["weighting"] = at_budget(claim_weighting(records(grids_["causes"] + tuned), choice), conv, b, dense)
    if grids_["second"]:
        conv2 = convergence(summarize(records(grids_["second_budget"]), ["method", "budget"]))
        out["second"] = at_budget(claim_baselines(records(grids_["second"]), dataset=second_dataset), conv2, b,
                                  dense_convergence(grids_["second_doubling"]))
    if grids_["mdl"]:
        out["mdl"] = claim_multidomain(multidomain_results(grids_["mdl"]), mdl_budget)
    return {name: out[name] if name in claims and name in out else not_read(name, profile) for name in CLAIMS}


def table(claims: list[dict[str, Any]], rests_on: dict[str, str]) -> pd.DataFrame:
    """One row per claim; `rests on` is the setting of the claim's own study (multi-task or multi-domain)."""
    return pd.DataFrame([{"claim": c["claim"], "verdict": c["verdict"], "evidence": c["evidence"],
                          "rests on": "–" if c["verdict"] == NOT_READ else rests_on[c.get("setting", "multi-task")]}
                         for c in claims])


def rests_on(profile: str, seeds=None, mdl_budget: float = 0.5,
             datasets: tuple[str, ...] = ()) -> dict[str, str]:
    """The profile, seeds and schedules each setting's verdicts rest on, in words (NYU-v2 multi-task, multi-domain,
    and each further multi-task dataset in `datasets`)."""
    seeds = check_seeds(list(seeds)) if seeds is not None else default_seeds(profile, "main")
    cfg = make_config(profile, "adapmtl", 0.9)
    mdl = make_mdl_config(profile, "budget_aware", mdl_budget)
    head = f"{profile}: seeds {', '.join(map(str, seeds))}"
    out = {"multi-task": f"{head}; NYU-v2; dense {cfg.dense.train.iterations} it., sparse phase "
                         f"{cfg.train.iterations} it.",
           "multi-domain": f"{head}; source {mdl.source.iterations} it., joint training {mdl.train.iterations} it., "
                           f"budget {mdl_budget:g}"}
    for ds in datasets:
        c = make_config(profile, "adapmtl", 0.9, overrides=dataset_overrides(ds))
        out[ds] = (f"{head}; {dataset_spec(ds).title}; dense {c.dense.train.iterations} it., sparse phase "
                   f"{c.train.iterations} it.")
    return out


__all__ = ["claim_baselines", "claim_backbone", "claim_weighting", "claim_multidomain", "read", "table", "rests_on"]
