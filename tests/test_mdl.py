"""Multi-domain learning: the Decathlon-layout data (generated and loaded by one code path, clear errors), switches and
their straight-through gradient, the sharing terms, the budget projection, exact physical removal, costs, the S-score
and the CLI contract of the issue."""

from __future__ import annotations

import json
import subprocess
import sys

import pandas as pd
import pytest
import torch

from mtlprune.core import paths
from mtlprune.core.data.domains import DOMAINS, DomainsSpec, generate, load_domain
from mtlprune.core.errors import DataError
from mtlprune.study import multidomain as report
from mtlprune.study.profiles import make_mdl_config
from mtlprune.core.mdl.costs import macs, parameters
from mtlprune.core.mdl.methods import project_budget
from mtlprune.core.mdl.model import MultiDomainResNet, normalise_input, remove_unused, ste_binary
from mtlprune.core.mdl.sharing import SHARING, weighted
from mtlprune.core.identity import run_id

SMALL = DomainsSpec(n_train=20, n_val=10, n_test=10, n_source=20, size=16)


@pytest.fixture(scope="module")
def domains_root(tmp_path_factory):
    return generate(SMALL, tmp_path_factory.mktemp("dom") / SMALL.dirname(), progress=False)


def test_generated_benchmark_is_the_decathlon_layout_and_deterministic(domains_root, tmp_path):
    ann = json.loads((domains_root / "annotations" / "digits_train.json").read_text())
    assert {"images", "annotations", "categories"} <= set(ann)
    assert (domains_root / ann["images"][0]["file_name"]).exists()
    for d in DOMAINS:
        x, y, names = load_domain(domains_root, d, "train", 16)
        assert x.shape == (20, 3, 16, 16) and x.dtype == torch.uint8 and len(names) >= 10
        assert y.min() >= 0 and y.max() < len(names)
    again = generate(SMALL, tmp_path / SMALL.dirname(), progress=False)
    for d in DOMAINS:
        assert torch.equal(load_domain(domains_root, d, "test", 16)[0], load_domain(again, d, "test", 16)[0])
    # visibly different domains: their mean images differ clearly
    means = torch.stack([load_domain(domains_root, d, "train", 16)[0].float().mean((0, 2, 3)) for d in DOMAINS])
    assert torch.cdist(means, means).add(torch.eye(len(DOMAINS)) * 1e3).min() > 5


def test_loader_resizes_real_sized_images_and_names_the_fix(domains_root, tmp_path):
    x, _, _ = load_domain(domains_root, "signs", "val", 12)  # shorter side to 12, centre crop
    assert x.shape[-2:] == (12, 12)
    with pytest.raises(DataError, match="generate-domains"):
        load_domain(tmp_path, "digits", "train", 16)
    withheld = tmp_path / "annotations"
    withheld.mkdir()
    (withheld / "dtd_test.json").write_text(json.dumps({"images": [], "categories": []}))
    with pytest.raises(DataError, match="test_split=val"):
        load_domain(tmp_path, "dtd", "test", 16)


def test_ste_is_binary_forward_and_identity_backward():
    latent = torch.tensor([-0.3, 0.0, 0.2], requires_grad=True)
    s = ste_binary(latent)
    assert s.tolist() == [0.0, 0.0, 1.0]
    (s * torch.tensor([1.0, 2.0, 3.0])).sum().backward()
    assert latent.grad.tolist() == [1.0, 2.0, 3.0]


def _model(granularity="filter"):
    torch.manual_seed(0)
    model = MultiDomainResNet([10, 7, 4], widths=(8, 16, 16), blocks=2, granularity=granularity)
    with torch.no_grad():  # random on/off pattern per domain, some filters used by nobody
        for b in model.switched():
            b.switches.copy_(torch.randn_like(b.switches) - (2.0 if granularity == "slice" else 0.4))
    for m in model.modules():
        if isinstance(m, torch.nn.BatchNorm2d):  # non-trivial running statistics and affine parameters
            m.running_mean.uniform_(-0.5, 0.5)
            m.running_var.uniform_(0.5, 2.0)
            m.weight.data.uniform_(0.5, 1.5)
            m.bias.data.uniform_(-0.5, 0.5)
    return model.eval()


@pytest.mark.parametrize("granularity", ["filter", "slice"])
def test_removed_network_equals_the_switched_one_on_every_domain(granularity):
    model = _model(granularity)
    pruned = remove_unused(model)
    x = normalise_input(torch.randint(0, 255, (4, 3, 16, 16), dtype=torch.uint8))
    assert parameters(pruned) < parameters(model)
    assert macs(pruned, 16) < macs(model, 16)
    for d in range(model.domains):
        torch.testing.assert_close(pruned(x, d), model(x, d), rtol=1e-5, atol=1e-6)
    kept = [b.conv1.out_channels for b in pruned.switched()]
    union = [int((b.filter_usage().amax(0) > 0).sum()) for b in model.switched()]
    assert kept == [max(1, u) for u in union]


def test_sharing_terms_follow_their_definitions():
    u = [torch.tensor([[1.0, 1.0, 0.0, 0.0], [1.0, 0.0, 1.0, 0.0]])]  # 2 domains, 4 filters of one block
    dom, union, inter = weighted(u, [1])
    assert dom.tolist() == [0.5, 0.5] and float(union) == 0.75 and float(inter) == 0.25
    assert float(SHARING.get("union")(union, inter, 0.5)) == pytest.approx(0.25)
    assert float(SHARING.get("intersection")(union, inter, 0.5)) == pytest.approx(0.25)
    assert float(SHARING.get("jaccard")(union, inter, 0.5)) == pytest.approx(1 - 0.25 / 0.75)
    assert float(SHARING.get("none")(union, inter, 0.5)) == 0.0


@pytest.mark.parametrize("budget", [0.25, 0.5, 0.75])
def test_projection_meets_each_domain_budget_and_keeps_the_strongest(budget):
    model = _model()
    with torch.no_grad():
        for b in model.switched():
            b.switches.copy_(torch.rand_like(b.switches) + 0.1)  # all on
    before = [b.switches.detach().clone() for b in model.switched()]
    project_budget(model, budget)
    dom, _, _ = weighted([b.filter_usage().detach() for b in model.switched()], model.per_filter_params())
    assert (dom <= budget + 1e-6).all() and (dom > budget - 0.15).all()
    for d in range(model.domains):  # per domain, every kept filter was stronger than every dropped one (all blocks)
        on = torch.cat([old[d][b.switches[d] > 0] for b, old in zip(model.switched(), before)])
        off = torch.cat([old[d][b.switches[d] <= 0] for b, old in zip(model.switched(), before)])
        assert len(on) and len(off) and on.min() > off.max()


def test_s_score_gives_250_to_the_baseline_and_1000_to_perfection():
    df = pd.DataFrame([{"method": "individual networks", "acc a": 80.0, "acc b": 60.0},
                       {"method": "ours", "acc a": 100.0, "acc b": 60.0},
                       {"method": "worse", "acc a": 50.0, "acc b": 10.0}])
    s = report.s_scores(df)
    assert s.tolist() == pytest.approx([500.0, 1250.0, 0.0])


def test_cli_contract_smoke_budget_half():
    proc = subprocess.run([sys.executable, "-m", "mtlprune", "mdl", "--profile", "smoke", "--budget", "0.5", "--seed",
                           "0", "--json", "--no-progress"], capture_output=True, text=True, cwd=paths.REPO_ROOT,
                          timeout=600)
    assert proc.returncode == 0, proc.stderr[-2000:]
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    assert set(out["accuracy"]) == set(DOMAINS)
    assert 0 < out["params_ratio"] < 1 and 0 < out["macs_ratio"] < 1
    assert all(u <= 0.5 + 1e-6 for u in out["usage"].values())  # the projection holds every domain's budget


def test_same_seed_same_numbers(store, monkeypatch):
    from mtlprune.runs.multidomain import run_mdl

    cfg = make_mdl_config("smoke", "budget_aware", 0.5, overrides={"train.iterations": 4})
    first = run_mdl(cfg, 0, progress=False)
    monkeypatch.setenv("MTLPRUNE_RUNS", str(store.parent / "fresh"))  # a new store: everything trains again
    again = run_mdl(cfg, 0, progress=False)
    assert again["accuracy"] == first["accuracy"] and again["usage"] == first["usage"]


@pytest.mark.parametrize("method", ["budget_aware", "individual"])
def test_a_killed_multi_domain_run_resumes_to_the_same_numbers(method, store, monkeypatch):
    """Killed mid-training (after a checkpoint), rerun: it resumes from the checkpoint and ends with exactly the
    numbers and history of an uninterrupted run; the killed attempt leaves no summary."""
    from mtlprune.core.mdl import train
    from mtlprune.runs.multidomain import run_mdl, source_model
    from mtlprune.runs.store import read_history

    cfg = make_mdl_config("smoke", method, 0.5 if method == "budget_aware" else 1.0,
                          overrides={"train.iterations": 20})
    straight = run_mdl(cfg, 0, progress=False)
    straight_history = read_history(paths.seed_dir(run_id(cfg), 0))
    monkeypatch.setenv("MTLPRUNE_RUNS", str(store.parent / "killed"))
    source_model(cfg.source, progress=False)  # pretrained first: the kill below hits the method's training
    batches, calls = train._batches, {"n": 0}

    def dies_at_step_15(*args):
        calls["n"] += 1
        if calls["n"] == 15:  # inside the first network's run, after its checkpoint at step 14
            raise KeyboardInterrupt("killed")
        return batches(*args)

    monkeypatch.setattr(train, "_batches", dies_at_step_15)
    with pytest.raises(KeyboardInterrupt):
        run_mdl(cfg, 0, progress=False)
    out = paths.seed_dir(run_id(cfg), 0)
    assert not (out / "summary.json").exists()
    assert torch.load(out / "checkpoint_0.pt", weights_only=False)["step"] == 14  # saved every 2 of 20 steps
    monkeypatch.setattr(train, "_batches", batches)
    resumed = run_mdl(cfg, 0, progress=False)
    assert calls["n"] == 15  # the wrapper is gone: the rerun did not start over through it
    assert resumed["accuracy"] == straight["accuracy"]
    assert read_history(out) == straight_history


def test_bad_mdl_input_is_named():
    with pytest.raises(ValueError, match=r"budget must be in \(0, 1\]"):
        make_mdl_config("smoke", "budget_aware", 1.5)
    with pytest.raises(ValueError, match="unknown sharing term 'max'"):
        make_mdl_config("smoke", "budget_aware", 0.5, "max")
    with pytest.raises(ValueError, match="has no switches"):
        make_mdl_config("smoke", "individual", 1.0, "union")
    proc = subprocess.run([sys.executable, "-m", "mtlprune", "mdl", "--profile", "smoke", "--set",
                           "method.granularity=row"], capture_output=True, text=True, cwd=paths.REPO_ROOT, timeout=120)
    assert proc.returncode == 2 and "granularity 'row' unknown" in proc.stderr


def test_networks_log_validation_accuracy_for_the_plateau_criterion(store):
    """Every network logs its domains' validation accuracy over training (the source network too), which the
    chapter's plateau table reads; latency comes as a median ratio with its interquartile range."""
    from mtlprune.study import multidomain as report
    from mtlprune.runs.multidomain import run_mdl
    from mtlprune.core.mdl.train import VAL_POINTS
    from mtlprune.runs.store import read_history

    cfg = make_mdl_config("smoke", "individual", 1.0, overrides={"train.iterations": 20})
    summary = run_mdl(cfg, 0, progress=False)
    val = [h for h in read_history(paths.seed_dir(run_id(cfg), 0)) if h.get("split") == "val"]
    assert {h["network"] for h in val} == set(range(len(DOMAINS)))
    assert len(val) == VAL_POINTS * len(DOMAINS) and all(0 <= h["val/0"] <= 100 for h in val)
    source_val = read_history(paths.seed_dir(run_id(cfg.source), cfg.source.seed))
    assert len(source_val) >= VAL_POINTS and all("val/0" in h for h in source_val)
    table = report.plateau_table([(cfg, 0)])
    assert list(table["network"]) == ["source (pretraining)", "individual networks (mean over domains)"]
    q1, q3 = summary["latency_ratio_iqr"]
    assert q1 <= summary["latency_ratio"] <= q3


def test_channels_last_images_change_the_rounding_not_the_network():
    """`memory_format` is a layout: the same switched network on the same images gives the same logits and gradients
    (to float32 rounding) in either layout, and the channels_last images stay channels_last through the blocks."""
    torch.manual_seed(0)
    model = MultiDomainResNet([5, 7], (8, 16, 16), 1, "filter")
    x = torch.randint(0, 256, (4, 3, 16, 16), dtype=torch.uint8)
    out, grads = {}, {}
    for fmt in ("contiguous", "channels_last"):
        model.zero_grad()
        inp = normalise_input(x, fmt)
        assert inp.is_contiguous(memory_format=torch.channels_last) == (fmt == "channels_last")
        out[fmt] = model(inp, 1)
        out[fmt].square().sum().backward()
        grads[fmt] = model.blocks[0].conv1.weight.grad.clone()
    torch.testing.assert_close(out["channels_last"], out["contiguous"], rtol=1e-4, atol=1e-5)
    torch.testing.assert_close(grads["channels_last"], grads["contiguous"], rtol=1e-3, atol=1e-5)
    assert make_mdl_config("quick").train.memory_format == "channels_last"
