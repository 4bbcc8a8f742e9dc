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
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import nbformat
import yaml

from ..core import catalogue, paths
from ..study.profiles import PROFILES, check_profile
from . import params

STATIC_PAGES_BEFORE = ["intro"]
STATIC_PAGES_AFTER = ["conventions"]


@dataclass(frozen=True)
class Variant:
    name: str
    parameters: dict[str, Any] = field(default_factory=dict)
    title: str | None = None  # the page title in the book's table of contents


@dataclass(frozen=True)
class Chapter:
    notebook: str  # stem inside notebooks/
    part: str
    variants: tuple[Variant, ...]
    # per profile, parameters every variant gets on top of its own (e.g. smaller grids for the seconds-long smoke
    # profile that CI builds); the quick and full studies use the notebooks' own defaults
    profile_parameters: dict[str, dict[str, Any]] = field(default_factory=dict)
    profiles: tuple[str, ...] = PROFILES  # the profiles whose book has this chapter (manifest key `profiles`)
    opens_book: bool = False  # its page is the book's landing page (manifest key `opens_book`), the intro follows it

    def output_stem(self, variant: Variant) -> str:
        return self.notebook if len(self.variants) == 1 else f"{self.notebook}__{variant.name}"


def load_manifest(path: Path | None = None) -> list[Chapter]:
    path = path or paths.notebooks_dir() / "manifest.yml"
    try:
        data = yaml.safe_load(path.read_text())
    except (OSError, yaml.YAMLError) as exc:
        raise ValueError(f"cannot read the notebook manifest {path}: {exc}") from None
    chapters = []
    for i, entry in enumerate(data.get("chapters", [])):
        if "notebook" not in entry or "part" not in entry:
            raise ValueError(f"{path}: chapter #{i} needs `notebook` and `part`")
        nb = paths.notebooks_dir() / f"{entry['notebook']}.ipynb"
        if not nb.exists():
            raise ValueError(f"{path}: chapter #{i} names {nb.name}, which does not exist in notebooks/")
        raw = entry.get("variants") or [{"name": "main", "parameters": {}}]
        if "variants_from_catalogue" in entry:  # one variant per catalogued method of that role
            role = entry["variants_from_catalogue"]
            keys = catalogue.keys(role)
            if not keys or "variants" in entry:
                raise ValueError(f"{path}: chapter #{i}: variants_from_catalogue {role!r} names no catalogued role "
                                 f"(or is given together with variants)")
            raw = [{"name": k, "title": catalogue.label(k), "parameters": {"method": k}} for k in keys]
        variants = tuple(Variant(v["name"], dict(v.get("parameters") or {}), v.get("title")) for v in raw)
        per_profile = {p: dict(v or {}) for p, v in (entry.get("profile_parameters") or {}).items()}
        unknown_profiles = set(per_profile) - set(PROFILES)
        if unknown_profiles:
            raise ValueError(f"{path}: chapter #{i} has profile_parameters for {sorted(unknown_profiles)}; "
                             f"valid: {', '.join(PROFILES)}")
        in_profiles = tuple(entry.get("profiles") or PROFILES)
        if set(in_profiles) - set(PROFILES):
            raise ValueError(f"{path}: chapter #{i} lists unknown profile(s) {sorted(set(in_profiles) - set(PROFILES))}"
                             f" under `profiles`; valid: {', '.join(PROFILES)}")
        chapters.append(Chapter(entry["notebook"], entry["part"], variants, per_profile, in_profiles,
                                bool(entry.get("opens_book", False))))
    if not chapters:
        raise ValueError(f"{path} lists no chapters")
    return chapters


def _check_parameters(chapter: Chapter, profile: str) -> None:
    """Names and values of every variant's parameters, before any notebook runs, against the notebook's own
    declarations (its parameters cell, `params`)."""
    kinds, defaults = params.declared(paths.notebooks_dir() / f"{chapter.notebook}.ipynb")
    if "profile" not in kinds:
        raise ValueError(f"notebooks/{chapter.notebook}.ipynb must declare a `profile` parameter")
    for v in chapter.variants:
        params.check_values(kinds, {**defaults, **_parameters(chapter, v, profile)},
                            f"manifest variant {chapter.notebook}/{v.name}")


def _parameters(chapter: Chapter, variant: Variant, profile: str) -> dict[str, Any]:
    return {**variant.parameters, **chapter.profile_parameters.get(profile, {}), "profile": profile,
            "progress": False}


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
                        parameters=_parameters(chapter, variant, profile), kernel_name="python3", progress_bar=False,
                        log_output=True, cwd=str(paths.REPO_ROOT))
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
    params = json.dumps(_parameters(chapter, variant, profile), sort_keys=True, default=str).encode()
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


def build_study(profile: str = "quick", only: list[str] | None = None, book_only: bool = False,
                book: Path | None = None) -> int:
    """Execute the manifest (or only some notebooks) for `profile` and build the book; non-zero on any failure."""
    check_profile(profile)
    book = book or paths.book_dir()
    chapters = [c for c in load_manifest() if profile in c.profiles]  # the profile's book (e.g. quick: a subset)
    if only:
        known = {c.notebook for c in chapters}
        missing = set(only) - known
        if missing:
            raise ValueError(f"--only {sorted(missing)}: not chapters of the {profile} book (manifest `profiles`); "
                             f"valid: {sorted(known)}")
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
        keys = {}
        for i, (ch, v) in enumerate(todo, 1):
            stem = ch.output_stem(v)
            keys[stem] = notebook_key(ch, v, profile, library)
            if (record.get(stem) == {"key": keys[stem], "store": runs}
                    and (out_dir / f"{stem}.ipynb").exists()):
                print(f"[{i}/{len(todo)}] {ch.notebook} ({v.name}) unchanged: not re-executed", flush=True)
                continue
            record.pop(stem, None)
            print(f"[{i}/{len(todo)}] {ch.notebook} ({v.name}, profile {profile}) ...", flush=True)
            try:
                path, secs = execute_chapter(ch, v, profile, out_dir)
                record[stem] = {"key": keys[stem]}
                print(f"[{i}/{len(todo)}] {ch.notebook} ({v.name}) done in {secs:.0f} s", flush=True)
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
