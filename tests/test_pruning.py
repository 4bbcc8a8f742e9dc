"""Pruning strategies: exact achieved sparsity, zeros that stay zero, global vs layer-wise, LTH rewinding, the DiSparse
union rule, IMP monotonicity, sparse export, and clear errors."""

from __future__ import annotations

import json

import pytest
import torch
from torch import nn

from mtlprune.core.data import loading
from mtlprune.core import catalogue, paths
from mtlprune.runs import multitask as runner
from mtlprune.core.models import build_model, prunable_layers
from mtlprune.study.profiles import make_config
from mtlprune.core.pruning import STRATEGIES, TrainContext, build_strategy
from mtlprune.core.pruning.disparse import erk_densities, union_masks_at, union_rule
from mtlprune.core.pruning.masks import (effective_weights, export_sparse, get_masks, global_masks, import_sparse,
                                    install_masks, layer_masks, plain_state_dict, set_masks)
from mtlprune.core.runtime import Runtime
from mtlprune.core.train import iterate_batches
from mtlprune.core.identity import run_id

QUIET = Runtime(progress=False)
# every method that prunes to a requested sparsity on its own (controls prune nothing; magnitude_component takes a
# sparsity per component, tested with its parameters below)
METHODS = [m for m in STRATEGIES.names() if STRATEGIES.get(m).prunes and m != "magnitude_component"]
EXACT = [m for m in METHODS if m != "str"]


def test_the_catalogue_and_the_registry_list_the_same_methods():
    assert set(STRATEGIES.names()) == set(catalogue.keys())
    assert set(catalogue.baselines()) >= {"magnitude_global", "snip", "lth", "imp", "str", "disparse_static",
                                          "disparse_pt", "disparse_dynamic"}  # the papers' baselines


@pytest.mark.parametrize("method", METHODS)
def test_cli_reports_achieved_sparsity_per_component(method, smoke_dense, capsys):
    from mtlprune.render.cli import main

    rc = main(["run", "--profile", "smoke", "--method", method, "--sparsity", "0.9", "--json", "--no-progress"])
    captured = capsys.readouterr()
    assert rc == 0, captured.err[-2000:]
    out = json.loads(captured.out.strip().splitlines()[-1])
    sp = out["sparsity"]
    assert set(sp["components"]) == {"backbone", "seg", "depth", "normal"}
    # the overall figure is the parameter-weighted mean of the component figures
    params = out["params"]["components"]
    weighted = sum(sp["components"][c] * params[c] for c in params) / sum(params.values())
    assert sp["overall"] == pytest.approx(weighted)
    if method in EXACT:
        assert abs(sp["overall"] - 0.9) <= 0.005
    else:
        assert 0.5 < sp["overall"] < 1.0  # STR reports what it reached


def _ctx(cfg, model, seed=0):
    data = loading.load_data(cfg, "train", progress=False)
    gen = torch.Generator().manual_seed(seed)
    return TrainContext(model=model, cfg=cfg, device=torch.device("cpu"), seed=seed,
                        train_batches=lambda: iterate_batches(data, 8, gen, True))


def _set_up(cfg):
    """A freshly built smoke model with the strategy of `cfg` installed and set up (a random 'dense' state)."""
    torch.manual_seed(0)
    model = build_model(cfg.model, cfg.tasks)
    strategy = build_strategy(cfg.pruning)
    strategy.install(model)
    ctx = _ctx(cfg, model)
    ctx.dense_state = plain_state_dict(build_model(cfg.model, cfg.tasks))
    strategy.setup(ctx)
    return model, strategy, ctx


@pytest.mark.parametrize("method", ["random", "magnitude_global", "magnitude_layer", "snip", "disparse_static",
                                    "disparse_pt", "disparse_dynamic"])
@pytest.mark.parametrize("sparsity", [0.5, 0.95, 0.99])
def test_initial_masks_hit_the_target(method, sparsity):
    model, _, _ = _set_up(make_config("smoke", method, sparsity))
    w = effective_weights(model)
    achieved = sum(int((v == 0).sum()) for v in w.values()) / sum(v.numel() for v in w.values())
    assert abs(achieved - sparsity) <= 0.005


def test_pruned_weights_stay_zero_through_adam_with_momentum_and_weight_decay():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(3, 8, 3), nn.Conv2d(8, 4, 1))
    opt = torch.optim.Adam(model.parameters(), lr=0.1, weight_decay=0.1)
    x = torch.randn(4, 3, 8, 8)
    for _ in range(3):  # build up Adam moments for every weight while dense
        opt.zero_grad()
        model(x).pow(2).mean().backward()
        opt.step()
    # the same parametrization the strategies use, on a plain model
    from torch.nn.utils import parametrize
    from mtlprune.core.pruning.masks import WeightMask
    masks = []
    for conv in model:
        parametrize.register_parametrization(conv, "weight", WeightMask(conv.weight.shape))
        m = (torch.rand(conv.weight.shape) > 0.7).float()
        conv.parametrizations.weight[0].mask.copy_(m)
        with torch.no_grad():
            conv.parametrizations.weight.original.mul_(m)
        masks.append(m)
    # the same optimizer keeps stepping: registration keeps the Parameter object, so its stale dense moments remain
    assert all(opt.state[conv.parametrizations.weight.original]["exp_avg"].abs().sum() > 0 for conv in model)
    for _ in range(10):
        opt.zero_grad()
        model(x).pow(2).mean().backward()
        opt.step()
    for conv, m in zip(model, masks):
        assert torch.all(conv.weight[m == 0] == 0)
        assert torch.any(conv.weight[m == 1] != 0)


def test_global_vs_layer_wise_semantics():
    scores = {"big": torch.full((100,), 10.0) + torch.rand(100), "small": torch.rand(100)}
    g = global_masks(scores, 0.5)
    assert g["big"].sum() == 100 and g["small"].sum() == 0  # one threshold: the large layer keeps everything
    lw = layer_masks(scores, 0.5)
    assert lw["big"].sum() == 50 and lw["small"].sum() == 50  # same fraction in every layer
    kept = lw["small"].bool()
    assert scores["small"][kept].min() >= scores["small"][~kept].max()


def test_lth_rewinds_kept_weights_to_their_initial_values():
    dense_cfg = make_config("smoke")
    runner.run(dense_cfg, 0, QUIET)
    dense_dir = paths.seed_dir(run_id(dense_cfg), 0)
    init = torch.load(dense_dir / "snapshots" / "step_0.pt")
    final = torch.load(dense_dir / "model.pt")
    cfg = make_config("smoke", "lth", 0.8)
    model = build_model(cfg.model, cfg.tasks)
    strategy = build_strategy(cfg.pruning)
    strategy.install(model)
    ctx = _ctx(cfg, model)
    ctx.dense_state, ctx.dense_dir = final, dense_dir
    strategy.setup(ctx)
    masks = get_masks(model)
    w = effective_weights(model)
    for name, m in masks.items():
        kept = m.bool()
        assert torch.equal(w[name][kept], init[f"{name}.weight"][kept])
        assert torch.all(w[name][~kept] == 0)
    # the mask itself is the global magnitude mask of the trained weights, not of the initial ones
    expected = global_masks({n: final[f"{n}.weight"].abs() for n in masks}, 0.8)
    assert all(torch.equal(masks[n], expected[n]) for n in masks)
    from_init = global_masks({n: init[f"{n}.weight"].abs() for n in masks}, 0.8)
    assert not all(torch.equal(masks[n], from_init[n]) for n in masks)
    trained = torch.cat([final[f"{n}.weight"].abs().reshape(-1) for n in masks])
    kept_all = torch.cat([masks[n].reshape(-1) for n in masks]).bool()
    assert trained[kept_all].min() >= trained[~kept_all].max()


def test_disparse_union_rule_when_tasks_disagree():
    comp = {"bb": "backbone", "h_seg": "seg", "h_depth": "depth"}
    keeps = {
        "seg": {"bb": torch.tensor([1.0, 1.0, 0.0, 0.0]), "h_seg": torch.tensor([1.0, 0.0])},
        "depth": {"bb": torch.tensor([0.0, 1.0, 1.0, 0.0]), "h_depth": torch.tensor([0.0, 1.0])},
    }
    out = union_rule(keeps, comp)
    # a backbone weight is pruned only when every task prunes it (position 3); heads follow their own task
    assert out["bb"].tolist() == [1.0, 1.0, 1.0, 0.0]
    assert out["h_seg"].tolist() == [1.0, 0.0] and out["h_depth"].tolist() == [0.0, 1.0]


def test_disparse_bisection_hits_the_target_through_the_union():
    torch.manual_seed(0)
    comp = {"bb": "backbone", "h1": "seg", "h2": "depth"}
    scores = {"seg": {"bb": torch.rand(1000), "h1": torch.rand(500)},
              "depth": {"bb": torch.rand(1000), "h2": torch.rand(500)}}
    masks = union_masks_at(scores, comp, 0.9)
    kept = sum(float(m.sum()) for m in masks.values())
    assert abs(1 - kept / 2000 - 0.9) <= 0.005
    assert float(masks["bb"].sum()) > 0.1 * 1000  # the union keeps more of the shared backbone than of a head


def test_erk_densities_meet_the_overall_density():
    shapes = {"a": torch.Size([16, 3, 3, 3]), "b": torch.Size([64, 16, 3, 3]), "c": torch.Size([13, 64, 1, 1])}
    d = erk_densities(shapes, 0.1, 0.9)
    numel = {n: s.numel() for n, s in shapes.items()}
    assert sum(d[n] * numel[n] for n in d) == pytest.approx(0.1 * sum(numel.values()))
    assert d["a"] > d["b"]  # small layers are kept denser


def test_imp_masks_only_shrink_and_end_at_the_target():
    cfg = make_config("smoke", "imp", 0.9, overrides={"train.iterations": 8}, method_params={"rounds": 4})
    model, strategy, ctx = _set_up(cfg)
    prev = get_masks(model)
    seen = []
    for step in range(1, 9):
        with torch.no_grad():  # stand-in for training: weights move, so magnitudes re-rank between rounds
            for layer in prunable_layers(model):
                layer.module.parametrizations.weight.original.add_(torch.randn_like(layer.module.weight) * 0.05)
        strategy.after_step(ctx, step)
        cur = get_masks(model)
        for n in cur:
            assert torch.all(cur[n] <= prev[n]), "a pruned weight came back"
        seen.append(sum(float((m == 0).sum()) for m in cur.values()) / sum(m.numel() for m in cur.values()))
        prev = cur
    assert len(set(round(s, 4) for s in seen)) >= 3  # several rounds
    assert abs(seen[-1] - 0.9) <= 0.005


def test_sparse_export_round_trips_and_is_smaller():
    cfg = make_config("smoke")
    model = build_model(cfg.model, cfg.tasks)
    install_masks(model)
    masks = global_masks({n: w.abs() for n, w in effective_weights(model).items()}, 0.9)
    set_masks(model, masks)
    state = plain_state_dict(model)
    blob = export_sparse(state, [layer.name for layer in prunable_layers(model)])
    back = import_sparse(blob)
    assert set(back) == set(state) and all(torch.equal(back[k], state[k]) for k in state)
    import io
    buf = io.BytesIO()
    torch.save(state, buf)
    assert len(blob) < 0.5 * len(buf.getvalue())


@pytest.mark.parametrize("sparsity", [0.0, 1.0, -0.1, 1.5])
def test_sparsity_outside_the_open_interval_is_rejected(sparsity):
    with pytest.raises(ValueError, match=r"sparsity must be in \(0, 1\)"):
        make_config("smoke", "magnitude_global", sparsity)


def test_bad_method_parameter_is_named():
    with pytest.raises(ValueError, match="pruning parameter rewind=0.3"):
        build_strategy(make_config("smoke", "lth", 0.5, method_params={"rewind": 0.3}).pruning)


def test_cli_hard_mask_control_and_equal_training_control(smoke_dense, capsys):
    from mtlprune.render.cli import main

    alloc = {"backbone": 0.5, "seg": 0.95, "depth": 0.9, "normal": 0.8}
    rc = main(["run", "--profile", "smoke", "--method", "magnitude_component", "--sparsity", "0.9", "--json",
               "--no-progress", *[a for k, v in alloc.items() for a in ("--param", f"{k}={v}")]])
    out = capsys.readouterr()
    assert rc == 0, out.err[-2000:]
    comps = json.loads(out.out.strip().splitlines()[-1])["sparsity"]["components"]
    assert comps == pytest.approx(alloc, abs=0.005)  # exactly the allocation it was given, per component
    rc = main(["run", "--profile", "smoke", "--method", "dense_finetune", "--seed", "0", "--json", "--no-progress"])
    out = capsys.readouterr()
    assert rc == 0, out.err[-2000:]
    summary = json.loads(out.out.strip().splitlines()[-1])
    assert summary["sparsity"]["overall"] == 0.0 and summary["method"] == "dense_finetune"
