"""End to end: the smoke study executes every manifest notebook with papermill and builds the book; bad notebook
parameters fail before any training."""

from __future__ import annotations

import shutil

import nbformat
import pytest

from mtlprune.core import paths
from mtlprune.render import book

pytestmark = pytest.mark.slow


@pytest.fixture
def book_dir(tmp_path):
    """A private copy of the book's static sources, so tests never touch the real book/."""
    out = tmp_path / "book"
    out.mkdir()
    for name in ("_config.yml", *(f"{p}.md" for p in book.STATIC_PAGES_BEFORE + book.STATIC_PAGES_AFTER)):
        shutil.copy(paths.book_dir() / name, out / name)
    extra = paths.book_dir() / "_extra"  # MathJax, installed by `make test` / `make study`
    if extra.exists():
        (out / "_extra").symlink_to(extra, target_is_directory=True)
    return out


def test_smoke_study_builds_the_book(book_dir, store):
    assert book.build_study(profile="smoke", book=book_dir) == 0
    html = book_dir / "_build" / "html"
    assert (html / "index.html").exists()
    chapters = [c for c in book.load_manifest() if "smoke" in c.profiles]
    assert chapters[0].notebook == "00_findings"  # the book opens on Findings
    for ch in chapters:
        for v in ch.variants:
            stem = ch.output_stem(v)
            page = (html / "generated" / f"{stem}.html").read_text()
            nb = nbformat.read(book_dir / "generated" / f"{stem}.ipynb", as_version=4)
            assert nb.metadata["papermill"]["parameters"]["profile"] == "smoke"
            assert not nb.metadata["papermill"].get("exception")
            if ch.notebook == "00_findings":  # a verdict table, no figure
                assert "verdict" in page and ("reproduced" in page or "tie" in page)
            else:
                assert "<img" in page, f"{stem} rendered no figure"
    assert "root: generated/00_findings" in (book_dir / "_toc.yml").read_text()  # the landing page
    dense = (html / "generated" / "01_dense_reference.html").read_text()
    assert "Test metrics" in dense and "angle_median" in dense
    assert "glue" not in dense.split("this is the reference")[0][-400:]  # glue roles were resolved to numbers
    assert any(store.glob("dense-*/seed_0/summary.json"))
    # the pages' plans (`study.plans`, what `study --plan` lists and costs) name exactly the runs the study trained
    from mtlprune.core.identity import run_id
    from mtlprune.render import plan

    pages = plan.study_plan("smoke")
    planned = {(run_id(r.cfg), r.seed) for p in pages for r in p.runs}
    trained = {(d.parent.name, int(d.name.removeprefix("seed_"))) for d in store.glob("*/seed_*")
               if (d / "summary.json").exists()}
    assert planned == trained and not any(p.to_train for p in pages)
    # every page in a real browser: no JavaScript errors, missing images, raw glue, tracebacks, warnings or
    # machine paths in outputs, untypeset math
    from mtlprune.render import browser_check

    reports = browser_check.check_book(html)
    assert len(reports) >= sum(len(c.variants) for c in chapters) + 2  # the chapters, the intro, the conventions
    bad = {r.page: r.problems for r in reports if r.problems}
    assert not bad, bad


def test_bad_parameter_fails_before_any_training(book_dir, store):
    ch = next(c for c in book.load_manifest() if c.notebook == "01_dense_reference")
    bad = book.Variant("bad", {"seeds": [-1]})
    with pytest.raises(Exception, match="parameter seeds=\\[-1\\]"):
        book.execute_chapter(ch, bad, "smoke", book_dir)
    assert not store.exists() or not any(store.iterdir())
