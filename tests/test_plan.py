"""The study's plan and its cost: what each page trains (`study.plans`, `render.plan`), what a run costs on this
machine (`runs.cost`, the loop's clock) and how the study schedules and reports it."""

from __future__ import annotations

import json
import os

import pytest

from mtlprune.core import loop, paths
from mtlprune.core.config import SourceConfig
from mtlprune.core.identity import run_id
from mtlprune.core.pruning import disparse, iterative
from mtlprune.render import manifest, plan
from mtlprune.render.book import _Eta, show_plan
from mtlprune.runs import cost
from mtlprune.runs.kinds import kind_of
from mtlprune.study import plans
from mtlprune.study.evidence import control_config
from mtlprune.study.profiles import make_config, make_mdl_config


@pytest.fixture
def fake_costs(monkeypatch, tmp_path):
    """Costs without measuring (1 s fixed, 0.1 s per iteration) kept in this test's own file; counts the classes
    measured."""
    measured = []
    monkeypatch.setattr(cost, "_cache_path", lambda: tmp_path / "costs.json")

    def measure(cfg):
        measured.append(cost.cost_class(cfg))
        return cost.Cost(fixed=1.0, per_iteration=0.1, per_validation=0.0, per_checkpoint=0.0)

    monkeypatch.setattr(cost, "measure", measure)
    return measured


def test_cost_class_ignores_length_level_and_seed_but_not_the_method():
    a = make_config("smoke", "adapmtl", 0.9)
    longer = make_config("smoke", "adapmtl", 0.5, sparse_overrides={"train.iterations": 40})
    assert cost.cost_class(a) == cost.cost_class(longer)
    assert cost.cost_class(a) != cost.cost_class(make_config("smoke", "str", 0.9))
    assert cost.cost_class(a) != cost.cost_class(control_config(a))
    assert cost.cost_class(make_mdl_config("smoke", "budget_aware", 0.5)) == cost.cost_class(
        make_mdl_config("smoke", "budget_aware", 0.25))
    short = cost.short_copy(a, 3)
    assert short.train.iterations == 3 and short.dense.train.iterations == cost.DEPENDENCY_ITERATIONS


def test_measure_splits_a_short_run_with_the_loop_clock():
    """A real short copy: steps, validations and checkpoints timed apart, nothing left in the run store."""
    cfg = make_config("smoke", "magnitude_global", 0.9)
    before = loop.CLOCK.steps
    c = cost.measure(cfg)
    # the short dense reference (once: both copies start from it), the warm-up and the timed copy
    assert loop.CLOCK.steps - before == cost.DEPENDENCY_ITERATIONS + cost.WARMUP + cost.SHORT
    assert c.per_iteration > 0 and c.per_validation > 0 and c.per_checkpoint > 0 and c.loops == 1
    assert not paths.runs_root().exists() or not any(paths.runs_root().iterdir())
    # a run of the class at its own length: one validation and checkpoint per epoch of its training split
    validations, checkpoints = kind_of(cfg).events(cfg)
    assert validations >= 1 and c.seconds(cfg) == pytest.approx(
        c.fixed + c.per_iteration * cfg.train.iterations + c.per_validation * validations
        + c.per_checkpoint * checkpoints)


def test_multidomain_events_follow_the_trainers_schedule():
    cfg = make_mdl_config("smoke", "budget_aware", 0.5)  # 30 iterations: validation every step, checkpoint every 3
    assert kind_of(cfg).events(cfg) == (30, 10)
    long = cost.short_copy(cfg, 805)  # every 40 steps and the last, every 80 and the last
    assert kind_of(long).events(long) == (21, 11)


def test_costs_are_kept_per_machine_and_remeasured_when_corrupt(fake_costs):
    cfgs = [make_config("smoke", "adapmtl", 0.9), make_config("smoke", "adapmtl", 0.5), make_config("smoke")]
    first = cost.costs(cfgs)
    assert len(fake_costs) == 2 and len(first) == 2  # two classes: AdapMTL (both levels) and dense
    cost.costs(cfgs)
    assert len(fake_costs) == 2  # read back, not measured again
    data = json.loads(cost._cache_path().read_text())
    assert list(data["machines"]) == [cost.machine_key()]
    entry = next(iter(data["machines"][cost.machine_key()].values()))
    entry["per_iteration"] = -5  # a damaged entry is measured again, never used
    cost._cache_path().write_text(json.dumps(data))
    cost.costs(cfgs)
    assert len(fake_costs) == 3
    cost._cache_path().write_text("{not json")
    cost.costs(cfgs)
    assert len(fake_costs) == 5


def test_the_plan_trains_each_run_once_dependencies_first(fake_costs):
    pages = plan.study_plan("smoke")
    stems = [p.stem for p in pages]
    assert stems[0] == "00_findings" and len(stems) == len(set(stems))
    trained = [(run_id(r.cfg), r.seed) for p in pages for r in p.to_train]
    assert len(trained) == len(set(trained))  # a run two pages share is trained by the first
    findings = pages[0]
    # the first wave: what the others start from (the dense references, the multi-domain source), nothing else
    first = findings.waves[0]
    assert any(isinstance(r.cfg, SourceConfig) for r in first)
    assert any(getattr(r.cfg, "pruning", None) is not None and r.cfg.pruning.method == "dense" for r in first)
    assert all(isinstance(r.cfg, SourceConfig) or r.cfg.dense is None for r in first)
    # every page reads its runs: what an earlier page trains counts as shared, not trained again
    assert all(len(p.runs) == sum(r.cached for r in p.runs) + p.shared + len(p.to_train) for p in pages)
    total = plan.estimate(pages)
    assert total == pytest.approx(sum(p.seconds for p in pages) + plan.BOOK_SECONDS)
    text = plan.report(pages, total, "smoke")
    assert "to train" in text and f"{len(trained):9d}" in text


def test_completed_runs_are_cached_in_the_plan(fake_costs, smoke_dense):
    before = plan.study_plan("smoke", only=["01_dense_reference"])[0]
    # seed 0 is in the store, seed 1 is not; neither has its doubling-test run at twice the length
    assert [r.cached for r in before.runs] == [True, False, False, False]
    assert [r.cfg.train.iterations for r in before.runs[2:]] == [2 * before.runs[0].cfg.train.iterations] * 2
    assert len(before.to_train) == 3


def test_packed_waves_are_scheduled_longest_first():
    def runs(seconds, threads):
        cfg = make_config("smoke", overrides={"train.threads": threads})
        return [plan.PlannedRun(cfg, i, "x", seconds=s) for i, s in enumerate(seconds)]

    assert plan._wave_seconds(runs([3, 3, 2, 2], threads=0)) == 10  # unpinned: one after another
    cores = os.cpu_count()
    if cores >= 2:
        width = min(4, cores)
        assert plan._wave_seconds(runs([3, 3, 2, 2], threads=1)) == (10 / width if width == 4 else 5)


def test_hard_mask_stand_ins_until_adapmtl_has_run(fake_costs):
    section = plans._hard_mask("smoke", [0], 0.9)
    assert section.derived and section.pairs[0][0].pruning.method == "magnitude_component"


def test_an_unknown_plan_in_the_manifest_is_one_error(tmp_path):
    bad = tmp_path / "manifest.yml"
    bad.write_text("chapters:\n  - notebook: 08_runs\n    part: Appendix\n    plan: nope\n")
    with pytest.raises(ValueError, match="plan 'nope'.*valid: .*findings"):
        manifest.load_manifest(bad)


def test_every_chapter_names_a_plan_that_accepts_its_parameters(fake_costs):
    for ch in manifest.load_manifest():
        assert ch.plan in plans.PLANS, ch.notebook
    plan.study_plan("standard")  # every page of the largest book builds its grids from its parameters


def test_the_eta_scales_what_is_left_by_the_pace_so_far(fake_costs):
    a, b = plan.ChapterPlan("a", "a", seconds=100.0), plan.ChapterPlan("b", "b", seconds=100.0)
    eta = _Eta(200.0 + plan.BOOK_SECONDS, 0)
    line = eta.after(a, 200.0)  # twice as slow as estimated: the 100 s left become 200 s
    assert f"about {plan.minutes(200.0 + plan.BOOK_SECONDS)} left" in line
    eta.skip(b)
    assert eta.left == 0


def test_every_quick_run_pins_one_thread_so_a_neighbour_slows_it_by_one_core():
    """The quick study's multi-task and multi-domain runs compute on one thread each (packed side by side by the
    local executor); only the source pretraining, one run alone in its wave, uses two."""
    runs = [r.cfg for p in plan.study_plan("quick") for r in p.runs]
    assert {kind_of(c).threads(c) for c in runs if not isinstance(c, SourceConfig)} == {1}
    sources = {run_id(c) for c in runs if isinstance(c, SourceConfig)}
    assert len(sources) == 1


def test_the_dense_page_plans_its_float32_twin_for_a_bf16_reference():
    """Where the dense reference computes in bf16 (full; `precision=auto` where it resolves to bf16), the dense page
    also trains its float32 twin (`evidence.precision_control`); a float32 reference (quick) has nothing to compare.
    Every dense page plans the doubling test (the reference at twice its length)."""
    for profile, sections in (("full", ["dense reference", "doubling test", "float32 twin"]),
                              ("quick", ["dense reference", "doubling test"])):
        page = plans.dense_reference(profile)
        assert [s.name for s in page] == sections
        assert {c.train.precision for sec in page for c, _ in sec.pairs} == (
            {"bf16", "float32"} if profile == "full" else {"float32"})


def test_plan_of_an_unknown_page_is_one_error():
    with pytest.raises(ValueError, match=r"--only \['nope'\].*valid"):
        show_plan("smoke", ["nope"])


@pytest.mark.parametrize("method", ["imp", "disparse_dynamic", "gradual_magnitude"])
def test_a_strategys_declared_updates_are_the_mask_updates_its_run_makes(monkeypatch, smoke_dense, method):
    """`PruningStrategy.updates` (what the cost model prices apart from the steps) counts the mask updates a real
    run's `after_step` makes, at a length where they are sparse and at the timing copy's."""
    calls = []
    for module in (iterative, disparse):  # the updates after set-up (set-up's masks go through `masked`)
        real = module.set_masks
        monkeypatch.setattr(module, "set_masks", lambda model, masks, real=real: (calls.append(1), real(model, masks)))
    for iterations in (40, cost.SHORT):
        cfg = make_config("smoke", method, 0.9, sparse_overrides={"train.iterations": iterations})
        calls.clear()
        kind_of(cfg).run(cfg, 0, False, None)
        assert kind_of(cfg).updates(cfg) == len(calls) > 0, (method, iterations)

def test_measure_prices_mask_updates_apart_from_the_steps():
    """DiSparse's timing copy updates its masks at 4 of its 6 steps, a run of 800 at 30: the updates' time is a
    cost per update, so the long run is not priced as if every step updated."""
    cfg = make_config("smoke", "disparse_dynamic", 0.9, sparse_overrides={"train.iterations": 800})
    c = cost.measure(cfg)
    updates = kind_of(cfg).updates(cfg)
    assert c.per_update > 0 and updates == 30 and kind_of(cost.short_copy(cfg, cost.SHORT)).updates(
        cost.short_copy(cfg, cost.SHORT)) == 4
    validations, checkpoints = kind_of(cfg).events(cfg)
    assert c.seconds(cfg) == pytest.approx(c.fixed + c.per_iteration * 800 + c.per_validation * validations
                                           + c.per_checkpoint * checkpoints + c.per_update * updates)
    assert kind_of(make_config("smoke", "adapmtl", 0.9)).updates(make_config("smoke", "adapmtl", 0.9)) is None
