"""The study pipeline: execute the notebooks of `notebooks/manifest.yml` with papermill, then build the Jupyter Book.

Each (notebook, variant) is executed once into `book/generated/`, with `profile` injected; the book renders those
executed copies only (`execute_notebooks: off`). A notebook that fails is moved to `book/generated/failed/` (kept for
reading, never rendered), the others still build, and the command exits non-zero naming every failure.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import nbformat
import yaml

from ..core import paths
from ..study.profiles import check_profile
from . import params, plan
from .manifest import Chapter, Variant, load_manifest, notebook_parameters  # noqa: F401 - Variant: re-exported

STATIC_PAGES_BEFORE = ["intro"]
STATIC_PAGES_AFTER = ["conventions"]


def _check_parameters(chapter: Chapter, profile: str) -> None:
    """Names and values of every variant's parameters, before any notebook runs, against the notebook's own
    declarations (its parameters cell, `params`)."""
    kinds, defaults = params.declared(paths.notebooks_dir() / f"{chapter.notebook}.ipynb")
    if "profile" not in kinds:
        raise ValueError(f"notebooks/{chapter.notebook}.ipynb must declare a `profile` parameter")
    for v in chapter.variants:
        params.check_values(kinds, {**defaults, **notebook_parameters(chapter, v, profile)},
                            f"manifest variant {chapter.notebook}/{v.name}")


def _tag_for_book(path: Path, title: str | None = None) -> None:
    """Hide code inputs (one click shows them), drop the default parameters cell (the injected one stays) and, for a
    titled variant, make its title the page heading."""
    nb = nbformat.read(path, as_version=4)
    first_md = next((c for c in nb.cells if c.cell_type == "markdown"), None)
    if title and first_md is not None and first_md.source.startswith("# "):
        first_md.source = f"# {title}" + first_md.source[first_md.source.index("\n"):]
    for cell in nb.cells:
        if cell.cell_type != "code":
            continue
        tags = set(cell.metadata.get("tags", []))
        tags.add("remove-cell" if "parameters" in tags else "hide-input")
        cell.metadata["tags"] = sorted(tags)
    nbformat.write(nb, path)


def execute_chapter(chapter: Chapter, variant: Variant, profile: str, out_dir: Path) -> tuple[Path, float]:
    import papermill as pm

    out = out_dir / f"{chapter.output_stem(variant)}.ipynb"
    # papermill writes into `.running/`; only a notebook that ran to its end is moved to the rendered path, so a study
    # killed mid-notebook never leaves a half-executed page that a later `--book-only` would render as a chapter
    running = out_dir / RUNNING / out.name
    running.parent.mkdir(parents=True, exist_ok=True)
    t = time.perf_counter()
    pm.execute_notebook(str(paths.notebooks_dir() / f"{chapter.notebook}.ipynb"), str(running),
                        parameters=notebook_parameters(chapter, variant, profile), kernel_name="python3",
                        progress_bar=False, log_output=True, cwd=str(paths.REPO_ROOT))
    _tag_for_book(running, variant.title)
    running.replace(out)
    return out, time.perf_counter() - t


RUNNING = ".running"  # inside book/generated/: notebooks being executed (never rendered)
EXECUTED = ".executed.json"  # inside book/generated/: what each executed notebook was executed from


def _sha(*parts: bytes) -> str:
    h = hashlib.sha256()
    for part in parts:
        h.update(hashlib.sha256(part).digest())
    return h.hexdigest()[:16]


def library_fingerprint() -> str:
    """Every source file of the library (a changed line anywhere may change what a notebook shows)."""
    files = sorted((paths.REPO_ROOT / "lib" / "mtlprune").rglob("*.py"))
    return _sha(*[str(f.relative_to(paths.REPO_ROOT)).encode() + f.read_bytes() for f in files])


def store_fingerprint() -> str:
    """The run store's completed runs: every summary.json by path, size and modification time."""
    root = paths.runs_root()
    entries = sorted(f"{p.relative_to(root)}:{p.stat().st_size}:{p.stat().st_mtime_ns}"
                     for p in root.glob("*/seed_*/summary.json")) if root.exists() else []
    return _sha(str(root).encode(), "\n".join(entries).encode())


def notebook_key(chapter: Chapter, variant: Variant, profile: str, library: str) -> str:
    """What an executed notebook depends on besides the runs: its source, its parameters, the library."""
    source = (paths.notebooks_dir() / f"{chapter.notebook}.ipynb").read_bytes()
    params = json.dumps(notebook_parameters(chapter, variant, profile), sort_keys=True, default=str).encode()
    return _sha(source, params, library.encode(), (variant.title or "").encode())


def write_toc(chapters: list[Chapter], done: set[str], book: Path) -> None:
    """The table of contents: the landing page (a chapter with `opens_book` when it executed, else the intro), then
    the intro, then every executed chapter by part, then the reference pages."""
    parts: dict[str, list[dict[str, str]]] = {}
    root = STATIC_PAGES_BEFORE[0]
    for ch in chapters:
        if ch.opens_book and len(ch.variants) == 1 and ch.output_stem(ch.variants[0]) in done:
            root = f"generated/{ch.output_stem(ch.variants[0])}"
            parts["About this study"] = [{"file": p} for p in STATIC_PAGES_BEFORE]
            break
    for ch in chapters:
        for v in ch.variants:
            stem = ch.output_stem(v)
            if stem in done and f"generated/{stem}" != root:
                entry = {"file": f"generated/{stem}"}
                if v.title:
                    entry["title"] = v.title
                parts.setdefault(ch.part, []).append(entry)
    toc = {"format": "jb-book", "root": root,
           "parts": [{"caption": cap, "chapters": items} for cap, items in parts.items()]
           + [{"caption": "Reference", "chapters": [{"file": p} for p in STATIC_PAGES_AFTER]}]}
    (book / "_toc.yml").write_text("# Written by `python -m mtlprune study` from notebooks/manifest.yml.\n"
                                   + yaml.safe_dump(toc, sort_keys=False))


def build_book(book: Path, pages: set[str] | None = None) -> int:
    """Build the book; when the set of rendered pages changed since the last build (a chapter failed or was added),
    rebuild every page and delete the removed pages' HTML, so no page or link to a stale chapter survives."""
    jb = Path(sys.executable).with_name("jupyter-book")
    cmd = [str(jb) if jb.exists() else "jupyter-book", "build", str(book), "--keep-going"]
    record = book / "_build" / "pages.json"
    if pages is not None:
        try:
            before = set(json.loads(record.read_text()))
        except (OSError, ValueError):
            before = None
        if before != pages:
            cmd.append("--all")
            for stem in (before or set()) - pages:
                for stale in (book / "_build").glob(f"**/generated/{stem}.*"):
                    stale.unlink()
    log = book / "_build" / "build.log"
    log.parent.mkdir(parents=True, exist_ok=True)
    t = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True)
    log.write_text(proc.stdout + proc.stderr)
    if pages is not None and proc.returncode == 0:
        record.write_text(json.dumps(sorted(pages)))
    status = "built" if proc.returncode == 0 else f"FAILED (exit {proc.returncode}, see {log})"
    print(f"book {status} in {time.perf_counter() - t:.0f} s: {book / '_build' / 'html' / 'index.html'}", flush=True)
    return proc.returncode


def _measuring(i: int, n: int, cfg: Any) -> None:
    if i == 1:
        print(f"measuring what each of {n} kinds of run costs on this machine (a short run of each, once: kept in "
              f"data/costs.json) ...", flush=True)
    elif i % 10 == 0:
        print(f"  {i}/{n} measured", flush=True)


def show_plan(profile: str = "quick", only: list[str] | None = None) -> int:
    """`study --plan`: what the study would train, per page, and its estimated wall time; trains nothing."""
    _chapters(profile, only)
    plans = plan.study_plan(profile, only)
    total = plan.estimate(plans, _measuring)
    print(plan.report(plans, total, profile), flush=True)
    return 0


def _study_estimate(profile: str, only: list[str] | None) -> tuple[dict[str, plan.ChapterPlan], float | None]:
    """Each page's plan and the study's estimated wall time, or no estimate (said why) when it cannot be made."""
    try:
        plans = plan.study_plan(profile, only)
        total = plan.estimate(plans, _measuring)
    except Exception as exc:  # noqa: BLE001 - an estimate is a convenience: the study itself still runs
        print(f"no time estimate ({type(exc).__name__}: {str(exc).strip()[:300]})", flush=True)
        return {}, None
    n_train = sum(len(p.to_train) for p in plans)
    print(f"plan: {n_train} runs to train over {len(plans)} pages, estimated {plan.minutes(total)} on this machine "
          f"(`python -m mtlprune study --profile {profile} --plan` shows each page)", flush=True)
    return {p.stem: p for p in plans}, total


class _Eta:
    """The study's progress line: runs trained of those planned, and the time left: what the plan estimates for the
    pages still to run, scaled by how the pages run so far compared with their estimates (nothing without a plan)."""

    def __init__(self, total: float | None, runs: int) -> None:
        self.runs, self.done = runs, 0
        self.estimated = self.actual = 0.0
        self.left = (total - plan.BOOK_SECONDS) if total is not None else None

    def before(self, page: plan.ChapterPlan | None) -> str:
        if page is None or self.left is None:
            return ""
        return f": {len(page.to_train)} runs to train, estimated {plan.minutes(page.seconds)}"

    def skip(self, page: plan.ChapterPlan | None) -> None:
        if page is not None and self.left is not None:
            self.left -= page.seconds
            self.done += len(page.to_train)

    def after(self, page: plan.ChapterPlan | None, seconds: float) -> str:
        if page is None or self.left is None:
            return ""
        self.skip(page)
        self.estimated += page.seconds
        self.actual += seconds
        scale = self.actual / self.estimated if self.estimated > 0 else 1.0
        left = max(0.0, self.left) * scale + plan.BOOK_SECONDS
        finish = time.strftime("%H:%M", time.localtime(time.time() + left))
        return (f" (estimated {plan.minutes(page.seconds)}); runs {self.done}/{self.runs}; about "
                f"{plan.minutes(left)} left, done near {finish}")


def _chapters(profile: str, only: list[str] | None) -> list[Chapter]:
    """The chapters of `profile`'s book (e.g. quick: a subset), or one error naming an `--only` that is not one."""
    check_profile(profile)
    chapters = [c for c in load_manifest() if profile in c.profiles]
    if only:
        known = {c.notebook for c in chapters}
        missing = set(only) - known
        if missing:
            raise ValueError(f"--only {sorted(missing)}: not chapters of the {profile} book (manifest `profiles`); "
                             f"valid: {sorted(known)}")
    return chapters


def build_study(profile: str = "quick", only: list[str] | None = None, book_only: bool = False,
                book: Path | None = None) -> int:
    """Execute the manifest (or only some notebooks) for `profile` and build the book; non-zero on any failure."""
    chapters = _chapters(profile, only)
    book = book or paths.book_dir()
    for ch in chapters:
        _check_parameters(ch, profile)
    out_dir = book / "generated"
    failed_dir = out_dir / "failed"
    out_dir.mkdir(parents=True, exist_ok=True)
    shutil.rmtree(out_dir / RUNNING, ignore_errors=True)  # half-executed notebooks of a killed study
    failures = []
    started = time.perf_counter()
    todo = [(c, v) for c in chapters for v in c.variants if not only or c.notebook in only]
    if not book_only:
        # A notebook whose source, parameters and library are unchanged, and whose run store holds the same
        # completed runs as when it last executed, is not executed again: its executed copy is what it would produce.
        record_path = out_dir / EXECUTED
        try:
            record = json.loads(record_path.read_text())
        except (OSError, ValueError):
            record = {}
        library, runs = library_fingerprint(), store_fingerprint()
        keys = {ch.output_stem(v): notebook_key(ch, v, profile, library) for ch, v in todo}

        def unchanged(stem: str) -> bool:
            return record.get(stem) == {"key": keys[stem], "store": runs} and (out_dir / f"{stem}.ipynb").exists()

        # a study with nothing to execute needs no plan (nor its cost measurements)
        plans, total = (_study_estimate(profile, only) if not all(unchanged(stem) for stem in keys)
                        else ({}, None))
        eta = _Eta(total, sum(len(p.to_train) for p in plans.values()))
        for i, (ch, v) in enumerate(todo, 1):
            stem = ch.output_stem(v)
            page = plans.get(stem)
            if unchanged(stem):
                print(f"[{i}/{len(todo)}] {ch.notebook} ({v.name}) unchanged: not re-executed", flush=True)
                eta.skip(page)
                continue
            record.pop(stem, None)
            print(f"[{i}/{len(todo)}] {ch.notebook} ({v.name}, profile {profile}){eta.before(page)} ...", flush=True)
            try:
                path, secs = execute_chapter(ch, v, profile, out_dir)
                record[stem] = {"key": keys[stem]}
                print(f"[{i}/{len(todo)}] {ch.notebook} ({v.name}) done in {secs:.0f} s{eta.after(page, secs)}",
                      flush=True)
            except Exception as exc:  # noqa: BLE001 - report, keep the partial notebook, go on with the others
                failed_dir.mkdir(parents=True, exist_ok=True)
                partial = out_dir / RUNNING / f"{ch.output_stem(v)}.ipynb"
                kept = failed_dir / partial.name
                if partial.exists():
                    shutil.move(str(partial), kept)
                # the page of an earlier successful run is stale now: it must not be rendered as this chapter
                (out_dir / partial.name).unlink(missing_ok=True)
                failures.append(f"{ch.notebook} ({v.name}): {type(exc).__name__}: {str(exc).strip()[-600:]}"
                                f"\n    partial notebook: {kept}")
                print(f"[{i}/{len(todo)}] {ch.notebook} ({v.name}) FAILED", flush=True)
                eta.skip(page)
            runs = store_fingerprint()  # only a notebook that ran (even partly) can have added runs
        for stem, entry in record.items():  # the runs every notebook of this study has seen by its end
            if stem in keys and entry.get("key") == keys[stem]:
                entry["store"] = runs
        record_path.write_text(json.dumps(record, indent=1, sort_keys=True))
    done = {p.stem for p in out_dir.glob("*.ipynb")}
    write_toc(chapters, done, book)
    listed = {c.output_stem(v) for c in chapters for v in c.variants}
    rc = build_book(book, done & listed)
    print(f"study ({profile}) wall time {time.perf_counter() - started:.0f} s", flush=True)
    for f in failures:
        print(f"FAILED {f}", file=sys.stderr)
    return 1 if failures or rc else 0
