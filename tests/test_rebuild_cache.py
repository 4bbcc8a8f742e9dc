"""The study's rebuild cache: an executed notebook is reused only while its source, parameters, the library and the
run store's completed runs are what they were when it executed."""

from __future__ import annotations

import json

from mtlprune.core import paths
from mtlprune.render import book


def _fake_study(tmp_path, monkeypatch):
    chapter = book.Chapter("01_dense_reference", "Dense", (book.Variant("main"),))
    monkeypatch.setattr(book, "load_manifest", lambda: [chapter])
    monkeypatch.setattr(book, "_check_parameters", lambda *a: None)
    monkeypatch.setattr(book, "build_book", lambda b, pages=None: 0)
    executed = []

    def fake_execute(ch, v, profile, out_dir):
        executed.append(profile)
        out = out_dir / f"{ch.output_stem(v)}.ipynb"
        out.write_text("{}")
        return out, 0.0

    monkeypatch.setattr(book, "execute_chapter", fake_execute)
    return executed


def test_an_unchanged_notebook_is_not_re_executed_and_any_change_re_executes_it(tmp_path, monkeypatch, store):
    executed = _fake_study(tmp_path, monkeypatch)
    assert book.build_study("smoke", book=tmp_path) == 0
    assert book.build_study("smoke", book=tmp_path) == 0
    assert executed == ["smoke"]  # the second build reused it
    assert book.build_study("quick", book=tmp_path) == 0  # other parameters
    assert executed == ["smoke", "quick"]
    run = store / "dense-x" / "seed_0"
    run.mkdir(parents=True)
    (run / "summary.json").write_text(json.dumps({"run_id": "dense-x"}))  # a new completed run
    assert book.build_study("quick", book=tmp_path) == 0
    assert executed == ["smoke", "quick", "quick"]
    monkeypatch.setattr(book, "library_fingerprint", lambda: "changed library")
    assert book.build_study("quick", book=tmp_path) == 0
    assert executed == ["smoke", "quick", "quick", "quick"]
    (tmp_path / "generated" / "01_dense_reference.ipynb").unlink()  # the executed copy is gone
    assert book.build_study("quick", book=tmp_path) == 0
    assert len(executed) == 5


def test_the_library_fingerprint_covers_every_module():
    files = list((paths.REPO_ROOT / "lib" / "mtlprune").rglob("*.py"))
    assert len(files) > 40 and book.library_fingerprint() == book.library_fingerprint()
