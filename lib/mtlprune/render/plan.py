"""What a study will train and how long it will take, before it is paid (`python -m mtlprune study --plan`), and the
study's running estimate of what is left.

Each chapter of the manifest names its plan (`study.plans`), which builds the grids its notebook runs from the
notebook's parameters as papermill injects them. Chapters execute in book order, so a run two chapters share is trained
by the first; dependencies (dense references, source pretraining) are trained before the runs that need them, as the
grid runner does. Each run to train is costed on this machine (`runs.cost`, measured once per kind of step and kept
in `data/costs.json`), and each grid's runs are scheduled the way the local executor runs them: one after another, or
packed side by side where every run pins fewer threads than the machine has cores (longest first). A notebook's own
work (kernel start, tables, figures) and the book build are added as fixed estimates (`NOTEBOOK_SECONDS`,
`BOOK_SECONDS`).
"""

from __future__ import annotations

import heapq
from dataclasses import dataclass, field
from typing import Any, Callable

from ..core import paths
from ..core.identity import run_id
from ..runs import cost
from ..runs.executors import Job, packing
from ..runs.grid import dependency_waves
from ..runs.kinds import is_complete
from ..study.plans import PLANS
from ..study.profiles import check_profile
from . import params
from .manifest import Chapter, Variant, load_manifest, notebook_parameters

NOTEBOOK_SECONDS = 10.0  # kernel start, imports, tables and figures of one page (smoke pages: 5-11 s apart from runs)
BOOK_SECONDS = 20.0  # jupyter-book's build of the whole book (smoke: 7 s)


@dataclass
class PlannedRun:
    cfg: Any
    seed: int
    section: str
    derived: bool = False  # a stand-in: its config depends on results not computed yet
    cached: bool = False
    seconds: float = 0.0


@dataclass
class ChapterPlan:
    title: str
    stem: str
    runs: list[PlannedRun] = field(default_factory=list)  # the runs this chapter trains or reads first
    shared: int = 0  # runs it reads that an earlier chapter trains
    waves: list[list[PlannedRun]] = field(default_factory=list)  # what it trains, in the grid runner's waves
    seconds: float = 0.0  # estimated wall time, training and notebook

    @property
    def to_train(self) -> list[PlannedRun]:
        return [r for w in self.waves for r in w]


def _key(cfg: Any, seed: int) -> tuple[str, int]:
    return run_id(cfg), seed


def study_plan(profile: str, only: list[str] | None = None) -> list[ChapterPlan]:
    """Every chapter of `profile`'s book (or `only` those notebooks) with the runs it reads and trains, in order."""
    check_profile(profile)
    seen: set[tuple[str, int]] = set()
    out = []
    for ch in load_manifest():
        if profile not in ch.profiles or (only and ch.notebook not in only):
            continue
        for v in ch.variants:
            out.append(_chapter(ch, v, profile, seen))
    return out


def _chapter(ch: Chapter, v: Variant, profile: str, seen: set[tuple[str, int]]) -> ChapterPlan:
    plan = ChapterPlan(v.title or ch.notebook, ch.output_stem(v))
    if ch.plan is None:
        return plan
    _, defaults = params.declared(paths.notebooks_dir() / f"{ch.notebook}.ipynb")
    values = {**defaults, **notebook_parameters(ch, v, profile)}
    mine: set[tuple[str, int]] = set()
    for section in PLANS.get(ch.plan)(**values):
        deps, main = dependency_waves(list(section.pairs))
        wave_deps, wave_main = [], []
        for wave, pairs, derived in ((wave_deps, deps, False), (wave_main, main, section.derived)):
            for cfg, seed in pairs:
                run = PlannedRun(cfg, seed, section.name, derived)
                key = _key(cfg, seed)
                if key in mine:  # read again by a later grid of this chapter
                    continue
                mine.add(key)
                plan.runs.append(run)
                if key in seen:
                    plan.shared += 1
                    continue
                seen.add(key)
                run.cached = not derived and is_complete(cfg, seed)
                if not run.cached:
                    wave.append(run)
        plan.waves += [w for w in (wave_deps, wave_main) if w]
    return plan


def estimate(plans: list[ChapterPlan],
             on_measure: Callable[[int, int, Any], None] | None = None) -> float:
    """Cost every run to train (`runs.cost`, measuring what this machine has not measured yet) and set each chapter's
    estimated wall time; returns the study's, the book build included."""
    todo = [r for p in plans for r in p.to_train]
    costs = cost.costs([r.cfg for r in todo], on_measure)
    for r in todo:
        r.seconds = costs[cost.cost_class(r.cfg)].seconds(r.cfg)
    for p in plans:
        p.seconds = NOTEBOOK_SECONDS + sum(_wave_seconds(w) for w in p.waves)
    return sum(p.seconds for p in plans) + BOOK_SECONDS


def _wave_seconds(wave: list[PlannedRun]) -> float:
    """The wall time of one grid wave on the local executor: one after another, or `packing` workers side by side
    (longest run first to the worker that frees first)."""
    width = packing([Job(r.cfg, r.seed, None) for r in wave])
    if width <= 1:
        return sum(r.seconds for r in wave)
    workers = [0.0] * width
    for s in sorted((r.seconds for r in wave), reverse=True):
        heapq.heapreplace(workers, workers[0] + s)
    return max(workers)


def minutes(seconds: float) -> str:
    return f"{seconds / 60:.1f} min" if seconds >= 60 else f"{seconds:.0f} s"


def report(plans: list[ChapterPlan], total: float | None, profile: str) -> str:
    """The plan as a table: per chapter the runs it reads, those cached, those to train and the estimated time."""
    rows = [f"The {profile} study: {len(plans)} pages, on this machine ({cost.machine_key()})", "",
            f"{'page':46s} {'runs':>5s} {'cached':>7s} {'earlier':>8s} {'to train':>9s} {'estimate':>10s}"]
    for p in plans:
        train = p.to_train
        note = " *" if any(r.derived for r in train) else ""
        cached = sum(r.cached for r in p.runs)
        est = minutes(p.seconds) if total is not None else "-"
        rows.append(f"{p.title[:46]:46s} {len(p.runs):5d} {cached:7d} {p.shared:8d} {len(train):9d} {est:>10s}{note}")
    n_train = sum(len(p.to_train) for p in plans)
    n_cached = sum(sum(r.cached for r in p.runs) for p in plans)
    rows.append(f"{'total (distinct runs)':46s} {n_train + n_cached:5d} {n_cached:7d} {'':8s} {n_train:9d} "
                f"{minutes(total) if total is not None else '-':>10s}")
    if total is not None:
        rows += ["", f"Estimated wall time: {minutes(total)} (training measured here, {NOTEBOOK_SECONDS:.0f} s per "
                     f"page and {BOOK_SECONDS:.0f} s for the book assumed; runs packed side by side may each run "
                     f"slower than measured alone, and another process computing slows everything)."]
    if any(r.derived for p in plans for r in p.to_train):
        rows.append("* includes runs whose configs come from other runs' results (the hard-mask control at "
                    "AdapMTL's learned allocation): costed as stand-ins of the same kind.")
    return "\n".join(rows)
