"""Fault injection: bad input, missing or corrupt data and caches, divergence, concurrency and notebook failures.

Every trial ends in one clear error before any work (naming the setting or file and the fix) or in a detected and
redone result, never in a silent wrong or partial one. In-process (`cli.main`) on the smoke profile, so the whole
module runs in every CI run. Numbered as in the reliability issue's trial list where they come from it.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from mtlprune.core.data import loading
from mtlprune.runs import store as store_mod
from mtlprune.core import paths
from mtlprune.render import book, params
from mtlprune.runs import multitask as runner
from mtlprune.render.cli import main
from mtlprune.core.errors import DataError
from mtlprune.core.data.nyuv2 import generate, load_split
from mtlprune.core.errors import CacheError
from mtlprune.core.locks import make_once
from mtlprune.study.profiles import generator_spec, make_config
from mtlprune.core.identity import run_id


def cli(capsys, *argv: str) -> tuple[int, str]:
    rc = main(list(argv))
    captured = capsys.readouterr()
    return rc, captured.err


def run_cli(capsys, *extra: str, method: str = "dense") -> tuple[int, str]:
    return cli(capsys, "run", "--profile", "smoke", "--method", method, "--no-progress", *extra)


def no_runs(store: Path) -> bool:
    return not list(store.glob("*/seed_*/summary.json")) and not list(store.glob("*/seed_*/checkpoint.pt"))


# ------------------------------------------------------------------------------------------------ 1: config settings
@pytest.mark.parametrize("setting, named", [
    ("train.betas=[0.9]", "train.betas"),
    ("model.head_rates=[]", "model.head_rates"),
    ("train.eval_batch_size=0", "train.eval_batch_size"),
    ("data.val_fraction=0", "data.val_fraction"),
    ("data.val_fraction=0.99", "data.val_fraction"),
    ("data.split_seed=-1", "data.split_seed"),
    ("train.iterations=true", "train.iterations"),
    ("tasks=[seg,seg]", "tasks"),
    ("train.lr=-1", "train.lr"),
    ("train.lr=.nan", "train.lr"),
    ("model.backbone=7", "model.backbone"),
    ("train.betas=[0.9,1.5]", "train.betas"),
    ("nosuch.key=1", "nosuch"),
])
def test_bad_settings_fail_before_training_naming_the_setting(capsys, store, setting, named):
    rc, err = run_cli(capsys, "--set", setting)
    assert rc == 2, err
    assert named in err and "Traceback" not in err
    assert no_runs(store)


# ------------------------------------------------------------------------------------------------ 2: method parameters
@pytest.mark.parametrize("param, named", [("mechansim=faithful", "mechansim"), ("project_every=2.5", "project_every"),
                                          ("project_every=true", "project_every"), ("mechanism=3", "mechanism")])
def test_bad_method_parameters_are_rejected_by_name(capsys, store, param, named):
    rc, err = run_cli(capsys, "--sparsity", "0.9", "--param", param, method="adapmtl")
    assert rc == 2 and named in err, err
    assert no_runs(store)


def test_unknown_and_ill_typed_weighting_parameters_are_rejected():
    with pytest.raises(ValueError, match="perod.*valid: temperature, period"):
        make_config("smoke", "adapmtl", 0.9, weighting="dwa", weighting_params={"perod": 8})
    with pytest.raises(ValueError, match="period=2.5"):
        make_config("smoke", "adapmtl", 0.9, weighting="dwa", weighting_params={"period": 2.5})


def test_a_parameterless_method_rejects_any_parameter():
    with pytest.raises(ValueError, match="takes no parameters"):
        make_config("smoke", "magnitude_global", 0.9, method_params={"rounds": 2})


@pytest.mark.parametrize("argv, named", [(("--sparsity", "1.5"), "sparsity"), (("--sparsity", "0.9", "--seed", "-1"), "seed")])
def test_bad_cli_values_are_named(capsys, store, argv, named):
    rc, err = run_cli(capsys, *argv, method="magnitude_global")
    assert rc == 2 and named in err


# ------------------------------------------------------------------------------------------------ 3: multi-domain input
def test_unknown_domain_fails_before_source_pretraining(capsys, store):
    rc, err = cli(capsys, "mdl", "--profile", "smoke", "--no-progress", "--set", "source.data.domains=[digits,nosuch]")
    assert rc == 2 and "nosuch" in err and "valid" in err
    assert not list(store.glob("mdlsource-*/seed_*/model.pt"))  # nothing pretrained


def test_bad_budget_is_named(capsys, store):
    rc, err = cli(capsys, "mdl", "--profile", "smoke", "--budget", "0", "--no-progress")
    assert rc == 2 and "budget" in err


# ------------------------------------------------------------------------------------------------ 4: notebook parameters
@pytest.mark.parametrize("notebook, change, named", [
    ("06_multidomain", {"sharing": "nope"}, "sharing"),
    ("06_multidomain", {"budget": 0.3}, "budget"),
    ("06_multidomain", {"budgets": [0.0, 0.5]}, "budgets"),
    ("01_dense_reference", {"n_samples": -1}, "n_samples"),
    ("01_dense_reference", {"seeds": [0, 0]}, "seeds"),
    ("02_pruning_method", {"method_params": "abc"}, "method_params"),
    ("02_pruning_method", {"method_params": {"nosuch": 1}}, "nosuch"),
    ("02_pruning_method", {"seed_sparsity": 0.6}, "seed_sparsity"),
    ("00_findings", {"mdl_budget": 0.0}, "mdl_budget"),
    ("07_sparse_budget", {"budgets": [0, 10]}, "budgets"),
    ("04_adapmtl", {"methods": ["adapmtl", "snp"]}, "methods"),
    ("05_adapmtl_ablation", {"group": "colour"}, "group"),
    ("03_baselines_comparison", {"methods": ["snip", "snp"]}, "methods"),
])
def test_bad_notebook_parameters_fail_before_any_work(notebook, change, named):
    kinds, values = params.declared(paths.notebooks_dir() / f"{notebook}.ipynb")
    params.check_values(kinds, values, notebook)  # the defaults are valid
    with pytest.raises(ValueError, match=named):
        params.check_values(kinds, {**values, **change}, notebook)


def test_the_study_checks_every_variant_before_executing_anything(monkeypatch):
    chapter = book.Chapter("06_multidomain", "Multi-domain", (book.Variant("bad", {"sharing": "nope"}),))
    monkeypatch.setattr(book, "load_manifest", lambda: [chapter])
    executed = []
    monkeypatch.setattr(book, "execute_chapter", lambda *a: executed.append(a))
    with pytest.raises(ValueError, match="sharing"):
        book.build_study("smoke")
    assert not executed


# ------------------------------------------------------------------------------------------------ 5: data on disk
def test_a_missing_generated_file_names_the_working_fix(capsys, data_home):
    cfg = make_config("smoke")
    root = loading.ensure_data(cfg.data.synthetic, progress=False)
    victim = root / "train" / "depth" / "3.npy"
    saved = victim.read_bytes()
    victim.unlink()
    loading._cached_split.cache_clear()
    try:
        rc, err = run_cli(capsys)
        assert rc == 2 and str(victim) in err and f"rm -r '{root}'" in err
        assert "--profile quick" not in err  # the old message advised a no-op command of another profile
    finally:
        victim.write_bytes(saved)
        loading._cached_split.cache_clear()


def test_a_killed_generate_leaves_no_temporary_folder(tmp_path):
    spec = generator_spec("smoke")
    root = tmp_path / spec.dirname()
    stale = tmp_path / f"{spec.dirname()}.tmp-99999"
    (stale / "train").mkdir(parents=True)
    make_once(root, lambda r: generate(spec, r, workers=1, progress=False))
    assert (root / "meta.json").exists() and not stale.exists()


def test_missing_real_data_names_the_release_and_readme(tmp_path):
    with pytest.raises(DataError, match="MTLPRUNE_NYUV2.*README"):
        load_split(tmp_path / "nothing", "train")


def test_a_corrupt_data_file_is_named(data_home):
    cfg = make_config("smoke")
    root = loading.ensure_data(cfg.data.synthetic, progress=False)
    victim = root / "val" / "image" / "0.npy"
    saved = victim.read_bytes()
    victim.write_bytes(b"not numpy")
    try:
        with pytest.raises(DataError, match=str(victim)):
            load_split(root, "test")
    finally:
        victim.write_bytes(saved)


# ------------------------------------------------------------------------------------------------ 6/7: cached runs
@pytest.fixture
def pruned(smoke_dense):
    """A smoke magnitude run and its dense reference, trained once in this test's store."""
    cfg = make_config("smoke", "magnitude_global", 0.9)
    runner.run(cfg, 0, runner.Runtime(progress=False))
    return cfg


def _redo(cfg):
    (paths.seed_dir(run_id(cfg), 0) / "summary.json").unlink()
    return runner.run(cfg, 0, runner.Runtime(progress=False))


def test_a_corrupt_or_missing_dense_model_names_the_fix(pruned):
    dense_dir = paths.seed_dir(run_id(pruned.dense), 0)
    (dense_dir / "model.pt").write_bytes(b"garbage")
    with pytest.raises(CacheError, match=f"unreadable.*rm -r '{dense_dir}'"):
        _redo(pruned)
    (dense_dir / "model.pt").unlink()
    with pytest.raises(CacheError, match="missing.*rm -r"):
        runner.run(pruned, 0, runner.Runtime(progress=False))


def test_a_summary_missing_keys_or_of_another_seed_is_refused(pruned):
    path = paths.seed_dir(run_id(pruned), 0) / "summary.json"
    good = json.loads(path.read_text())
    path.write_text(json.dumps({k: v for k, v in good.items() if k != "delta_t"}))
    with pytest.raises(CacheError, match="delta_t.*rm '"):
        runner.run(pruned, 0)
    path.write_text(json.dumps({**good, "seed": 1}))
    with pytest.raises(CacheError, match="seed"):
        runner.run(pruned, 0)
    path.write_text("{not json")
    with pytest.raises(CacheError, match="corrupt"):
        runner.run(pruned, 0)


def test_cli_turns_a_corrupt_summary_into_one_line(capsys, pruned):
    (paths.seed_dir(run_id(pruned), 0) / "summary.json").write_text("[]")
    rc, err = run_cli(capsys, "--sparsity", "0.9", method="magnitude_global")
    assert rc == 2 and "rm '" in err and "Traceback" not in err


# ------------------------------------------------------------------------------------------------ 8/9: divergence
def test_a_diverged_run_is_never_cached_as_complete(capsys, store):
    rc, err = run_cli(capsys, "--set", "train.iterations=1", "--set", "train.lr=1e30")
    assert rc == 2 and "non-finite" in err and "train.lr" in err
    assert not list(store.glob("*/seed_*/summary.json"))
    failures = list(store.glob("*/seed_*/failure.json"))
    assert len(failures) == 1 and "FloatingPointError" in json.loads(failures[0].read_text())["error"]
    assert not list(store.glob("*/seed_*/checkpoint.pt"))  # moved aside: a rerun starts afresh


def test_non_finite_results_are_detected():
    store_mod.check_finite("ok", {"a": {"b": 1.0}})
    with pytest.raises(FloatingPointError, match="seg/miou"):
        store_mod.check_finite("evaluation results", {"seg": {"miou": float("nan")}})


def test_a_nan_source_network_is_not_cached(capsys, store):
    rc, err = cli(capsys, "mdl", "--profile", "smoke", "--no-progress", "--set", "source.lr=1e30",
                  "--set", "source.iterations=3")
    assert rc == 2 and "source" in err and "non-finite" in err
    assert not list(store.glob("mdlsource-*/seed_*/summary.json"))
    assert list(store.glob("mdlsource-*/seed_*/failure.json"))


def test_a_corrupt_source_network_names_the_fix(capsys, store):
    from mtlprune.study.profiles import make_mdl_config
    from mtlprune.runs.multidomain import source_model

    cfg = make_mdl_config("smoke", "frozen", 1.0, overrides={"source.iterations": 2})
    source_model(cfg.source, progress=False)
    out = paths.seed_dir(run_id(cfg.source), cfg.source.seed)
    (out / "model.pt").write_bytes(b"garbage")
    with pytest.raises(CacheError, match=f"rm -r '{out}'"):
        source_model(cfg.source, progress=False)


# ------------------------------------------------------------------------------------------------ 10/11: the book
@pytest.fixture
def one_chapter_book(monkeypatch) -> list:
    """A manifest of one chapter whose book build only records the pages it would render."""
    chapter = book.Chapter("01_dense_reference", "Dense", (book.Variant("main"),))
    monkeypatch.setattr(book, "load_manifest", lambda: [chapter])
    monkeypatch.setattr(book, "_check_parameters", lambda *a: None)
    built: list = []
    monkeypatch.setattr(book, "build_book", lambda b, pages=None: built.append(pages) or 0)
    return built


def test_a_failed_chapter_removes_its_old_page_and_a_killed_one_is_never_rendered(tmp_path, monkeypatch,
                                                                                  one_chapter_book):
    built = one_chapter_book
    out_dir = tmp_path / "generated"
    out_dir.mkdir()
    (out_dir / "01_dense_reference.ipynb").write_text("{}")  # the page of an earlier, successful study

    def killed_midway(src, dst, **kwargs):
        Path(dst).write_text("{half}")  # papermill wrote part of the notebook, then the kernel died
        raise RuntimeError("kernel died")

    import papermill

    monkeypatch.setattr(papermill, "execute_notebook", killed_midway)
    assert book.build_study("smoke", book=tmp_path) == 1
    assert not (out_dir / "01_dense_reference.ipynb").exists()  # neither the stale page nor the partial one
    assert (out_dir / "failed" / "01_dense_reference.ipynb").read_text() == "{half}"
    assert built == [set()]  # the book is built without that chapter


def test_book_only_ignores_notebooks_left_half_executed(tmp_path, one_chapter_book):
    built = one_chapter_book
    (tmp_path / "generated" / book.RUNNING).mkdir(parents=True)
    (tmp_path / "generated" / book.RUNNING / "01_dense_reference.ipynb").write_text("{half}")
    assert book.build_study("smoke", book_only=True, book=tmp_path) == 0
    assert built == [set()] and not (tmp_path / "generated" / book.RUNNING).exists()


def test_a_changed_page_set_rebuilds_everything_and_drops_stale_html(tmp_path, monkeypatch):
    import subprocess

    calls = []

    class Done:
        returncode, stdout, stderr = 0, "", ""

    monkeypatch.setattr(subprocess, "run", lambda cmd, **kw: calls.append(cmd) or Done())
    html = tmp_path / "_build" / "html" / "generated"
    html.mkdir(parents=True)
    (tmp_path / "_build" / "pages.json").write_text(json.dumps(["a", "b"]))
    (html / "b.html").write_text("stale")
    assert book.build_book(tmp_path, {"a"}) == 0
    assert "--all" in calls[-1] and not (html / "b.html").exists()
    assert book.build_book(tmp_path, {"a"}) == 0
    assert "--all" not in calls[-1]  # unchanged pages: the incremental build


# ------------------------------------------------------------------------------------------------ metrics cross-check
def test_streamed_median_angle_takes_the_median_rank():
    from mtlprune.core.tasks import TaskMeters

    angles = torch.tensor([10.0, 20.0, 30.0, 40.0, 50.0])  # odd n: the median is the 3rd value
    rad = torch.deg2rad(angles)
    normal_gt = torch.zeros(1, 3, 1, 5)
    normal_gt[:, 2] = 1.0
    pred = torch.stack([torch.sin(rad), torch.zeros(5), torch.cos(rad)]).reshape(1, 3, 1, 5)
    meters = TaskMeters(("normal",))
    meters.update({"normal": pred}, {"normal": normal_gt})
    median = meters.compute()["normal"]["angle_median"]
    assert median == pytest.approx(float(np.median(angles.numpy())), abs=0.01)


# ------------------------------------------------------------------------ reliability issue: one clear error each
@pytest.mark.parametrize("setting, named", [
    ("train.iterations.x=5", "train.iterations.x"),  # a value addressed as a group (was a TypeError)
    ("train.lr=[1,", "not valid YAML"),  # (was yaml's ParserError)
    ("train.threads=100000", "train.threads"),  # (was an ImportError)
    ("data.synthetic.height=100000", "height"),  # (was a 74.5 GiB allocation)
    ("data.synthetic.n_train=900000", "GiB in memory"),
    ("train.iterations=1000000000000", "train.iterations"),  # (was accepted silently)
    ("train.batch_size=10000000", "train.batch_size"),
])
def test_out_of_range_and_malformed_settings_are_one_clear_error(capsys, store, data_home, setting, named):
    before = sorted(p.name for p in Path(data_home).glob("generated/*"))
    rc, err = run_cli(capsys, "--set", setting)
    assert rc == 2 and named in err and "Traceback" not in err, err
    assert no_runs(store)
    assert sorted(p.name for p in Path(data_home).glob("generated/*")) == before  # no (half-)generated dataset


def test_a_seed_out_of_range_is_named(capsys, store):
    rc, err = run_cli(capsys, "--seed", "99999999999999999999")
    assert rc == 2 and "seed must be an integer in [0, 2^31)" in err  # (was "Overflow when unpacking long long")


def test_mdl_settings_out_of_range_are_named(capsys, store):
    rc, err = cli(capsys, "mdl", "--profile", "smoke", "--set", "train.iterations=1000000000000", "--no-progress")
    assert rc == 2 and "train.iterations" in err
    rc, err = cli(capsys, "mdl", "--profile", "smoke", "--set", "source.threads=100000", "--no-progress")
    assert rc == 2 and "source.threads" in err


def test_a_data_folder_that_is_a_file_is_named(capsys, store, tmp_path, monkeypatch):
    blocker = tmp_path / "data-file"
    blocker.write_text("")
    monkeypatch.setenv("MTLPRUNE_DATA", str(blocker))
    rc, err = run_cli(capsys)
    assert rc == 2 and "MTLPRUNE_DATA" in err and "is a file, not a folder" in err


def test_an_unwritable_store_is_named_with_its_fix(capsys, store, monkeypatch):
    """A read-only run store (simulated: as root, permissions do not stop writes) ends in one line naming the file and
    the fix, not a PermissionError traceback."""
    def read_only(directory):
        raise PermissionError(13, "Permission denied", str(directory / ".lock"))

    monkeypatch.setattr(store_mod, "run_lock", read_only)
    rc, err = run_cli(capsys)
    assert rc == 2 and "permission denied" in err and "MTLPRUNE_RUNS" in err and "Traceback" not in err


def test_a_full_disk_is_named_and_a_rerun_leaves_no_temporary_file(store, smoke_cfg, tmp_path):
    """A file-size limit (what a full disk does to a write) stops the run with one message naming the fix; the same
    command afterwards finishes and leaves no half-written checkpoint behind."""
    import os
    import resource
    import subprocess
    import sys

    runner.run(smoke_cfg, 0, runner.Runtime(progress=False))  # the data and the dense reference exist
    args = [sys.executable, "-m", "mtlprune", "run", "--profile", "smoke", "--method", "magnitude_global",
            "--sparsity", "0.9", "--no-progress"]

    def small_files():
        resource.setrlimit(resource.RLIMIT_FSIZE, (20_000, 20_000))

    proc = subprocess.run(args, capture_output=True, text=True, env=os.environ, preexec_fn=small_files, timeout=300)
    assert proc.returncode == 2 and "Free disk space" in proc.stderr and "Traceback" not in proc.stderr, proc.stderr
    proc = subprocess.run(args, capture_output=True, text=True, env=os.environ, timeout=300)
    assert proc.returncode == 0, proc.stderr
    assert not list(store.rglob("*.tmp-*"))


def test_an_undeclared_notebook_parameter_stops_the_first_cell():
    """`-p sparsty 0.5` (a typo papermill only warns about) stops the notebook in its first cell, before any work:
    the check reads papermill's injected cell."""
    namespace = {"__annotations__": {"profile": "profile", "sparsity": "fraction"}, "profile": "smoke",
                 "sparsity": 0.9, "sparsty": 0.5,
                 "In": ["", 'profile: "profile" = "quick"\nsparsity: "fraction" = 0.9',
                        '# Parameters\nprofile = "smoke"\nsparsty = 0.5\n']}
    with pytest.raises(ValueError, match=r"\['sparsty'\] are not declared"):
        params.check(namespace)
    del namespace["sparsty"]
    namespace["In"][-1] = '# Parameters\nprofile = "smoke"\n'
    params.check(namespace)  # the declared ones pass
    namespace["sparsity"] = 1.5
    with pytest.raises(ValueError, match="sparsity=1.5 must be a number in"):
        params.check(namespace)


def test_a_notebook_run_with_an_undeclared_parameter_fails_in_its_first_cell(tmp_path):
    """The same through papermill and a real kernel, on a two-cell notebook of the library's kind."""
    import nbformat
    import papermill as pm

    nb = nbformat.v4.new_notebook()
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    cell = nbformat.v4.new_code_cell('profile: "profile" = "quick"\nsparsity: "fraction" = 0.9')
    cell.metadata["tags"] = ["parameters"]
    marker = tmp_path / "work-started"
    nb.cells = [cell, nbformat.v4.new_code_cell("from mtlprune.render.params import check\n\ncheck(globals())\n"
                                                f"open({str(marker)!r}, 'w').close()")]
    source = tmp_path / "nb.ipynb"
    nbformat.write(nb, source)
    with pytest.raises(pm.PapermillExecutionError, match="sparsty"):
        pm.execute_notebook(str(source), str(tmp_path / "out.ipynb"), parameters={"sparsty": 0.5},
                            kernel_name="python3", progress_bar=False)
    assert not marker.exists()


def test_topk_keeps_exactly_k_of_tied_scores_as_documented():
    from mtlprune.core.pruning.masks import topk_mask

    scores = torch.ones(10)
    mask = topk_mask(scores, 3)
    assert int(mask.sum()) == 3  # the count is exact
    assert torch.equal(mask, topk_mask(scores, 3))  # and the choice repeats
    kept = mask.nonzero().flatten().tolist()
    doc = " ".join(topk_mask.__doc__.split())
    # the docstring says what happens: by position only if the first three are the ones kept
    assert kept == [0, 1, 2] or ("not by position" in doc and "broken by position" not in doc)


def test_adapmtl_says_when_its_budget_cannot_be_reached(smoke_dense, recwarn):
    """Weights with |w| >= 1 cannot be soft-thresholded (every threshold is sigmoid(s) < 1): a projection whose
    budget needs them prunes fewer than asked, counts exactly how many, logs it and says so once."""
    from mtlprune.core.models import build_model
    from mtlprune.core.pruning import TrainContext, build_strategy
    from mtlprune.core.pruning.adapmtl import overall_sparsity
    from mtlprune.core.pruning.soft_threshold import flat_plan

    cfg = make_config("smoke", "adapmtl", 0.999)
    model = build_model(cfg.model, cfg.tasks)
    strategy = build_strategy(cfg.pruning)
    strategy.install(model)
    plan = flat_plan(model)
    with torch.no_grad():
        plan.flat.fill_(0.01)
        plan.flat[:50].fill_(1.5)  # 50 weights no threshold can reach
    n = plan.flat.numel()
    ctx = TrainContext(model=model, cfg=cfg, device=torch.device("cpu"), train_batches=lambda: iter(()))
    mechanism = strategy.mechanism
    mechanism.budget_at = lambda step, iterations: 0.999  # the target from the first projection
    mechanism.project(ctx, 0)
    k = int(round(0.999 * n))
    zeros = round(overall_sparsity(model) * n)
    assert mechanism.shortfall == k - zeros == k - (n - 50) > 0
    assert strategy.scalars()["budget_shortfall"] == mechanism.shortfall
    warned = [w for w in recwarn if "cannot reach sparsity" in str(w.message)]
    assert len(warned) == 1
    mechanism.project(ctx, 1)
    assert len([w for w in recwarn if "cannot reach sparsity" in str(w.message)]) == 1  # said once per run
    mechanism.budget_at = lambda step, iterations: 0.5  # a reachable budget: nothing to say, nothing logged
    mechanism.project(ctx, 2)
    assert mechanism.shortfall == 0 and "budget_shortfall" not in strategy.scalars()
