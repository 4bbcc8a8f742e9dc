"""Evidence: intervals and ties, the budget choice, the plateau criterion, the equal-training control and the
hard-mask control, the `standard` profile, and the Findings verdicts (on synthetic records: the rules, not the runs)."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from mtlprune.study import evidence, findings, stats
from mtlprune.core.metrics import METRICS
from mtlprune.study.profiles import PROFILES, SPARSE_PHASE, make_config
from mtlprune.core.pruning import build_strategy
from mtlprune.core.identity import run_id


def test_interval_is_the_student_t_half_width():
    iv = stats.interval([1.0, 2.0, 3.0])
    # t_{0.975, 2} = 4.3027; sd = 1; n = 3
    assert iv["mean"] == pytest.approx(2.0)
    assert iv["ci"] == pytest.approx(4.302652729911275 / math.sqrt(3), rel=1e-9)
    assert math.isnan(stats.interval([5.0])["ci"])  # one seed: no interval


def test_verdict_calls_a_difference_only_where_intervals_separate():
    a, b = stats.interval([10.0, 10.5, 11.0]), stats.interval([1.0, 1.5, 2.0])
    assert stats.verdict(a, b) == "better" and stats.verdict(b, a) == "worse"
    assert stats.verdict(a, b, higher_is_better=False) == "worse"
    c = stats.interval([0.0, 10.0, 20.0])  # wide: overlaps both
    assert stats.verdict(a, c) == "tie" == stats.verdict(c, b)
    assert stats.verdict(stats.interval([9.0]), stats.interval([1.0])) == "tie"  # no interval, no call


def _summary(rows):
    rec = pd.DataFrame([{"method": m, "budget": b, "seed": s, "delta_t": v, "delta_t_control": v, "collapsed": ""}
                        for m, b, vals in rows for s, v in enumerate(vals)])
    return stats.summarize(rec, ["method", "budget"])


def test_budget_is_the_first_length_at_which_doubling_moves_no_value():
    """The ranking holds from 100 on, but the values still move by 3 points at 100 -> 200: B is 200, not 100 (the
    ranking criterion this replaced would have read a result that had not converged)."""
    summ = _summary([
        ("adapmtl", 50, [-30, -31, -29]), ("snip", 50, [-10, -11, -9]),     # snip ahead at 50 ...
        ("adapmtl", 100, [-5, -6, -4]), ("snip", 100, [-15, -16, -14]),     # ... behind from 100 on
        ("adapmtl", 200, [-2, -3, -1]), ("snip", 200, [-12, -13, -11]),     # both still 3 points from 100
        ("adapmtl", 400, [-1, -2, 0]), ("snip", 400, [-10, -11, -9]),       # 1 and 2 points: inside ± 2.5
    ])
    stab = stats.budget_stability(summ)
    assert stab.loc[0, "swaps"] == ["AdapMTL / SNIP"] and stab.loc[1, "swaps"] == []  # the ranking, shown beside
    conv = stats.convergence(summ)
    assert list(conv["budget"].unique()) == [50, 100, 200]
    assert conv.loc[conv["budget"] == 100, "change"].tolist() == pytest.approx([3.0, 3.0])
    assert stats.choose_budget(conv) == 200
    assert stats.unconverged(conv, 100) == ["adapmtl", "snip"] and stats.unconverged(conv, 200) == []


def test_a_change_inside_the_interval_and_under_three_points_has_converged():
    summ = _summary([("adapmtl", 50, [0, 5, -5]), ("snip", 50, [1, 6, -4]),
                     ("adapmtl", 100, [1, 6, -4]), ("snip", 100, [0, 5, -5])])
    assert stats.choose_budget(stats.convergence(summ)) == 50
    wide = _summary([("a", 50, [0, 20, -20]), ("a", 100, [5, 25, -15])])  # inside its wide interval, but 5 points
    assert not stats.convergence(wide)["converged"].any()


def test_a_length_where_methods_collapse_is_never_chosen():
    summ = _summary([("a", 50, [1, 1.1, 0.9]), ("b", 50, [5, 5.1, 4.9]),
                     ("a", 100, [2, 2.1, 1.9]), ("b", 100, [6, 6.1, 5.9]),
                     ("a", 200, [2.05, 2.15, 1.95]), ("b", 200, [6.05, 6.15, 5.95])])
    summ.loc[(summ["method"] == "b") & (summ["budget"] == 50), "collapsed"] = 3
    conv = stats.convergence(summ)
    assert stats.choose_budget(conv) == 100 and "b" in stats.unconverged(conv, 50)


def test_no_converged_budget_says_so_and_the_control_reads_against_the_dense_reference():
    summ = _summary([("a", 50, [1, 1.1, 0.9]), ("a", 100, [9, 9.1, 8.9])])
    assert stats.choose_budget(stats.convergence(summ)) is None
    ctl = _summary([("dense_finetune", 50, [2, 2.2, 1.8]), ("dense_finetune", 100, [12, 12.2, 11.8])])
    ctl["delta_t_control"] = float("nan")  # no Δ against itself
    conv = stats.convergence(ctl)
    assert conv.loc[0, "against"] == "dense reference" and conv.loc[0, "change"] == pytest.approx(10)
    assert stats.choose_budget(conv) is None


def test_plateau_criterion_reads_the_last_quarter():
    steps = np.arange(10, 1010, 10)
    rising = pd.DataFrame({"step": steps, "split": "val", "seg/miou": steps / 10.0, "seg/pixacc": 50 + steps / 100})
    flat = rising.assign(**{"seg/miou": 40.0, "seg/pixacc": 80.0})
    assert not stats.plateau(rising, ["seg"])["holds"]
    p = stats.plateau(flat, ["seg"])
    assert p["holds"] and p["gain"] == pytest.approx(0.0)
    assert stats.series_plateau(steps, np.full(len(steps), 70.0))["holds"]
    assert not stats.series_plateau(steps, 50 + steps / 50)["holds"]


def test_control_trains_the_dense_reference_for_the_pruned_runs_sparse_phase():
    cfg = make_config("smoke", "adapmtl", 0.9, sparse_overrides={"train.iterations": 3})
    ctl = evidence.control_config(cfg)
    assert ctl.pruning.method == "dense_finetune" and ctl.pruning.sparsity == 0.0
    assert ctl.train == cfg.train and ctl.dense == cfg.dense and ctl.weighting == cfg.dense.weighting
    assert run_id(ctl) != run_id(cfg.dense)
    pairs = evidence.with_controls([(cfg, 0), (cfg, 1), (make_config("smoke", "snip", 0.9), 0)])
    assert sum(c.pruning.method == "dense_finetune" for c, _ in pairs) == 3  # (3 it., 0), (3 it., 1), (4 it., 0)
    with pytest.raises(ValueError, match="no sparsity"):
        make_config("smoke", "dense_finetune", 0.5)


def test_hard_mask_control_keeps_a_given_sparsity_per_component():
    alloc = {"backbone": 0.5, "seg": 0.9, "depth": 0.95, "normal": 0.8}
    cfg = make_config("smoke", "magnitude_component", 0.9, method_params=alloc)
    assert build_strategy(cfg.pruning).allocation == alloc
    with pytest.raises(ValueError, match="in \\[0, 1\\)"):
        make_config("smoke", "magnitude_component", 0.9, method_params={**alloc, "seg": 1.5})
    with pytest.raises(ValueError, match="backbone"):
        make_config("smoke", "magnitude_component", 0.9, method_params={"seg": 0.5})


def test_standard_profile_is_quicks_runs():
    assert "standard" in PROFILES
    for method in ("dense", "adapmtl"):
        s = 0.0 if method == "dense" else 0.9
        assert run_id(make_config("standard", method, s)) == run_id(make_config("quick", method, s))
    assert SPARSE_PHASE["standard"] == SPARSE_PHASE["quick"]


def _rec(method, values, collapsed=""):
    return [{"method": method, "label": method, "seed": i, "delta_t_control": v, "delta_t": v, "sparsity": 0.9,
             "collapsed": collapsed, "sparsity backbone": 0.8, "sparsity seg": 0.95, "sparsity depth": 0.95,
             "sparsity normal": 0.95} for i, v in enumerate(values)]


def test_findings_verdicts_follow_the_intervals():
    rows = _rec("adapmtl", [5, 6, 7]) + _rec("snip", [-5, -4, -3]) + _rec("lth", [4, 6, 8]) + \
        _rec("imp", [-9, -8, -7]) + _rec("disparse_dynamic", [-20, -20, -20], collapsed="seg")
    claim = findings.claim_baselines(pd.DataFrame(rows))
    assert claim["verdict"] == "tie"  # ahead of SNIP, IMP, collapsed DiSparse; tied with LTH
    assert claim["_glue"]["better"] == 3 and claim["_glue"]["tied"] == 1
    rows = [r for r in rows if r["method"] != "lth"]
    assert findings.claim_baselines(pd.DataFrame(rows))["verdict"] == "reproduced"
    rows += _rec("lth", [20, 21, 22])
    assert findings.claim_baselines(pd.DataFrame(rows))["verdict"] == "not reproduced"
    assert findings.claim_backbone(pd.DataFrame(_rec("adapmtl", [1, 2, 3])))["verdict"] == "reproduced"
    from mtlprune.study.design import CAUSES, TUNED

    adaptive, equal = list(CAUSES)[:2]
    rows = [dict(r, label=label) for label, values in ((adaptive, [5, 6, 7]), (equal, [-9, -8, -7]), (TUNED, [4, 6, 8]))
            for r in _rec("adapmtl", values)]
    claim = findings.claim_weighting(pd.DataFrame(rows), "static: seg ×2")
    assert claim["verdict"] == "tie"  # ahead of plain equal weights, tied with the tuned static weights
    assert "static: seg ×2" in claim["evidence"]


def test_comparison_table_ranks_ties_together():
    rec = pd.DataFrame(_rec("AdapMTL", [5, 6, 7]) + _rec("snip", [4, 6, 8]) + _rec("imp", [-9, -8, -7]))
    board = evidence.comparison_table(rec)
    assert list(board["label"]) == ["AdapMTL", "snip", "imp"]
    assert list(board["rank"]) == [1, 1, 3]
    assert list(board["AdapMTL is"]) == ["–", "tie", "better"]
    assert len(board.columns) <= 8


def test_static_weighting_emphasises_one_task_at_the_equal_loss_scale():
    import torch

    from mtlprune.core.weighting import build_weighting

    tasks = ("seg", "depth", "normal")
    w = build_weighting("static", tasks, {"emphasis": "depth"}, 10)
    total, weights = w({t: torch.tensor(1.0) for t in tasks}, 0)
    assert weights == pytest.approx({"seg": 0.75, "depth": 1.5, "normal": 0.75}) and float(total) == pytest.approx(3)
    assert build_weighting("static", tasks, {}, 10)({t: torch.tensor(2.0) for t in tasks}, 0)[1] == \
        pytest.approx({t: 1.0 for t in tasks})  # no emphasis: equal
    with pytest.raises(ValueError, match="emphasis 'edges' is not a task"):
        make_config("smoke", "adapmtl", 0.9, weighting="static", weighting_params={"emphasis": "edges"})


def test_tuned_weighting_picks_the_best_validation_score(monkeypatch):
    from mtlprune.runs import store
    from mtlprune.study import grids as plan

    cands = plan.weighting_candidates("smoke", [0, 1], 0.9)
    assert {label for label, _, _ in cands} == {"static: equal", "static: seg ×2", "static: depth ×2",
                                                 "static: normal ×2"}
    with pytest.raises(ValueError, match="needs every candidate run first"):
        plan.tuned_weighting(cands)
    score = {run_id(c): i for i, (_, c, _) in enumerate(cands)}  # the last candidate scores best on validation
    monkeypatch.setattr(store, "is_complete", lambda run_id, seed: True)
    monkeypatch.setattr(plan, "validation_score", lambda cfg, seed: score[run_id(cfg)])
    best, pairs = plan.tuned_weighting(cands)
    assert best == cands[-1][0] and {label for label, _, _ in pairs} == {plan.TUNED} and len(pairs) == 2


def test_paper_table_beside_ours_ranks_both_in_the_same_columns():
    """The paper's ranks follow its Δ_T; ours share a rank where the intervals overlap; one row per method run."""
    from mtlprune.render.tables import paper_beside_ours

    rows = []
    for method, values in (("adapmtl", [-10, -11, -12]), ("snip", [-40, -41, -42]), ("lth", [-11, -12, -13])):
        for seed, v in enumerate(values):
            rows.append({"run_id": f"{method}-x", "seed": seed, "method": method, "label": method, "delta_t": v,
                         "delta_t_control": v, "sparsity": 0.9, "collapsed": "", "sparsity backbone": 0.8})
    out = paper_beside_ours(pd.DataFrame(rows)).set_index("method")
    assert list(out.index) == ["AdapMTL", "Lottery ticket (LTH)", "SNIP"]  # the paper's order: +2.66, -5.12, -9.99
    assert list(out["paper rank"]) == [1, 2, 3]
    assert out.loc["AdapMTL", "our rank"] == out.loc["Lottery ticket (LTH)", "our rank"] == 1  # overlapping: tied
    assert out.loc["SNIP", "our rank"] == 3
    assert out.loc["SNIP", "our backbone %"] == 80.0
    with pytest.raises(ValueError, match="one configuration per method"):
        paper_beside_ours(pd.DataFrame(rows + [{**rows[0], "run_id": "adapmtl-y"}]))


def test_a_bf16_reference_gets_a_float32_twin_and_a_seed_by_seed_comparison():
    """The precision check of the dense chapter: a bf16 run is trained again in float32 (another id), and every test
    metric gets both means, the paired difference with its interval and a verdict; a float32 run has nothing to
    compare."""
    from mtlprune.runs import grid as execute

    assert evidence.precision_control(make_config("smoke"), [0, 1], progress=False) is None
    cfg = make_config("smoke", overrides={"train.precision": "bf16"})
    execute.run_seeds(cfg, [0, 1], progress=False)
    twin = evidence.precision_control(cfg, [0, 1], progress=False)
    assert twin.train.precision == "float32" and run_id(twin) != run_id(cfg)
    assert run_id(twin) == run_id(make_config("smoke"))  # the twin is the float32 run itself, shared with the study
    table = evidence.precision_table(cfg, twin, [0, 1])
    expected = {(t, m) for t, ms in METRICS.items() if t in cfg.tasks for m, _ in ms}
    assert set(table.index) == expected  # every metric of the run's tasks
    assert (table["seeds"] == 2).all() and set(table["verdict"]) <= {"tie", "higher", "lower"}
    assert (table["bf16 − float32"] != 0).any()  # bf16 autocast computes other numbers
    row = table.loc[("seg", "miou")]
    assert row["bf16 − float32"] == pytest.approx(row["bf16"] - row["float32"])


def test_a_verdict_on_a_sparse_phase_that_has_not_converged_is_not_called():
    claim = {"claim": "AdapMTL beats ...", "verdict": "reproduced", "evidence": "Δ_T vs control (%): AdapMTL +1.0",
             "_glue": {}}
    moving = _summary([("adapmtl", 100, [-30, -31, -29]), ("adapmtl", 200, [-5, -6, -4]),
                       ("snip", 100, [-10, -11, -9]), ("snip", 200, [-10, -11, -9])])
    held = findings.at_budget(claim, stats.convergence(moving), 100)
    assert held["verdict"] == findings.UNDETERMINED and "AdapMTL" in held["evidence"] and "SNIP" not in \
        held["evidence"].split("still moves")[1]
    steady = _summary([("adapmtl", 100, [-5, -6, -4]), ("adapmtl", 200, [-5, -6, -4])])
    assert findings.at_budget(claim, stats.convergence(steady), 100) is claim
    assert findings.at_budget(claim, stats.convergence(steady), 50)["verdict"] == findings.UNDETERMINED  # not measured


def test_a_verdict_on_a_dense_reference_that_still_moves_when_doubled_is_not_called():
    claim = {"claim": "AdapMTL beats ...", "verdict": "reproduced", "evidence": "Δ_T vs control (%): AdapMTL +1.0",
             "_glue": {}}
    steady = stats.convergence(_summary([("adapmtl", 100, [-5, -6, -4]), ("adapmtl", 200, [-5, -6, -4])]))
    dense_moves = stats.convergence(_summary([("dense", 1500, [-1, 0, 1]), ("dense", 3000, [8, 9, 10])]))
    dense_holds = stats.convergence(_summary([("dense", 1500, [-1, 0, 1]), ("dense", 3000, [0.5, 1, 1.5])]))
    held = findings.at_budget(claim, steady, 100, dense_moves)
    assert held["verdict"] == findings.UNDETERMINED and "dense reference (1500 → 3000" in held["evidence"]
    assert findings.at_budget(claim, steady, 100, dense_holds) is claim
    empty = stats.convergence(_summary([("dense", 1500, [-1, 0, 1])]))  # the double never ran
    assert findings.at_budget(claim, steady, 100, empty)["verdict"] == findings.UNDETERMINED


def test_the_dense_doubling_test_reads_each_run_against_the_mean_reference_at_its_length(tmp_path, monkeypatch):
    """Smoke dense references at L and 2L: Δ_T at L is centred on 0 (its own seed mean), at 2L it is what doubling
    moved; the pairs are the reference and the same config with twice the iterations."""
    from mtlprune.runs.grid import run_pairs
    from mtlprune.study import grids
    monkeypatch.setenv("MTLPRUNE_RUNS", str(tmp_path / "runs"))
    pairs = grids.reference_doubling_pairs("smoke", [0, 1])
    (base, _), (double, _) = pairs[0], pairs[2]
    assert double.train.iterations == 2 * base.train.iterations and double.dense is None
    assert run_id(base) == run_id(make_config("smoke")) and len(pairs) == 4
    with pytest.raises(ValueError, match="pruned run"):
        grids.dense_doubling_pairs(make_config("smoke", "adapmtl", 0.9), [0])
    run_pairs(pairs, profile="smoke", progress=False)
    rec = evidence.dense_doubling_records(pairs)
    assert len(rec) == 4 and rec[rec["budget"] == base.train.iterations]["delta_t"].mean() == pytest.approx(0, abs=1e-9)
    conv = evidence.dense_convergence(pairs)
    assert list(conv["budget"]) == [base.train.iterations] and list(conv["double"]) == [double.train.iterations]
    assert conv.iloc[0]["change"] == pytest.approx(rec[rec["budget"] == double.train.iterations]["delta_t"].mean())


def test_each_profile_reads_its_claims_and_builds_only_their_runs():
    """quick reads AdapMTL against the paper's baselines, its allocation and the multi-domain claim (what converges
    in its 30 minutes): its Findings build no run for the others; smoke and standard read every claim."""
    from mtlprune.study import design, grids

    quick = grids.findings_grids("quick")
    assert all(quick[k] for k in ("dense_doubling", "comparison", "budget", "mdl"))
    assert not any(quick[k] for k in ("causes", "candidates", "second_doubling", "second", "second_budget"))
    compared = {c.pruning.method for c, _ in quick["comparison"]} - {"dense_finetune"}
    assert compared == {"adapmtl", *design.PAPER_BASELINES} == set(design.BUDGET_METHODS["quick"])
    assert {c.train.iterations for c, _ in quick["budget"]} == set(grids.doubling_budgets("quick"))
    assert all(grids.findings_grids("smoke")[k] for k in quick)
    assert set(design.FINDINGS_CLAIMS["standard"]) == set(findings.CLAIMS)
    placeholder = findings.not_read("weighting", "quick")
    assert placeholder["verdict"] == findings.NOT_READ and "standard" in placeholder["words"]
    row = findings.table([placeholder], {"multi-task": "quick: seeds 0, 1, 2"}).iloc[0]
    assert row["verdict"] == findings.NOT_READ and row["rests on"] == "–"
