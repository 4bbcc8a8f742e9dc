"""AdapMTL: shared per-component thresholds, the soft-threshold weights it exports, the controlled budget projection,
the faithful freeze rule, the adaptive task weighting, and the smoke run the issue names."""

from __future__ import annotations

import pytest
import torch

from mtlprune.core.data import loading
from mtlprune.core import paths
from mtlprune.runs import multitask as runner
from mtlprune.core.models import build_model, prunable_layers
from mtlprune.study.profiles import make_config
from mtlprune.core.pruning import TrainContext, build_strategy
from mtlprune.core.pruning.adapmtl import overall_sparsity
from mtlprune.core.pruning.masks import original, plain_state_dict
from mtlprune.runs.results import load_history
from mtlprune.core.runtime import Runtime
from mtlprune.core.train import evaluate, iterate_batches
from mtlprune.core.weighting import build_weighting
from mtlprune.core.identity import run_id

QUIET = Runtime(progress=False)
TASKS = ("seg", "depth", "normal")


def _set_up(method, sparsity=0.9, **params):
    cfg = make_config("smoke", method, sparsity, method_params=params or None)
    torch.manual_seed(0)
    model = build_model(cfg.model, cfg.tasks)
    strategy = build_strategy(cfg.pruning)
    strategy.install(model)
    data = loading.load_data(cfg, "train", progress=False)
    gen = torch.Generator().manual_seed(0)
    ctx = TrainContext(model=model, cfg=cfg, device=torch.device("cpu"),
                       train_batches=lambda: iterate_batches(data, 8, gen, True),
                       dense_state=plain_state_dict(build_model(cfg.model, cfg.tasks)))
    strategy.setup(ctx)
    return model, strategy, ctx


@pytest.mark.parametrize("method, groups", [("adapmtl", {"backbone", "seg", "depth", "normal"}),
                                            ("adapmtl_global_threshold", {"all"}),
                                            ("adapmtl_layer_thresholds", None)])
def test_one_threshold_object_per_group(method, groups):
    model, strategy, _ = _set_up(method)
    layers = prunable_layers(model)
    assert set(strategy.thresholds) == (groups or {layer.name for layer in layers})
    for layer in layers:
        key = layer.name if groups is None else ("all" if groups == {"all"} else layer.component)
        assert layer.module.parametrizations.weight[0].sparse_threshold is strategy.thresholds[key]
    # each shared threshold is one parameter of the model, however many layers use it
    n_thresholds = sum(1 for n, _ in model.named_parameters() if n.endswith("sparse_threshold"))
    assert n_thresholds == len(strategy.thresholds)


def test_weights_are_soft_thresholded_not_masked():
    model, strategy, ctx = _set_up("adapmtl")
    assert overall_sparsity(model) == 0.0  # the budget ramps up from the dense start
    strategy.mechanism.project(ctx, ctx.cfg.train.iterations)
    for layer in prunable_layers(model):
        w = original(layer.module)
        tau = torch.sigmoid(strategy.thresholds[layer.component])
        expected = torch.sign(w) * torch.relu(w.abs() - tau)
        assert torch.equal(layer.module.weight, expected)
        kept = expected != 0
        assert (expected[kept].abs() < w[kept].abs()).all()  # survivors shrink by the threshold


def _per_layer_reference(model, image, monkeypatch, autocast):
    """The step as it was computed before the fused node: one softshrink per layer with the threshold as a constant
    (cast by autocast at each convolution), then dL/ds = −λ(1 − λ) Σ_layers ⟨dL/dW, sign(W)⟩ in a separate pass after
    the backward."""
    import torch.nn.functional as F

    from mtlprune.core.pruning.soft_threshold import SoftThreshold

    monkeypatch.setattr(SoftThreshold, "forward", lambda self, w: F.softshrink(
        w, float(torch.sigmoid(self.sparse_threshold.detach()))))
    # without the fused node's hooks: every layer's weight goes through its own parametrization
    monkeypatch.setattr(model, "_forward_pre_hooks", type(model._forward_pre_hooks)())
    monkeypatch.setattr(model, "_forward_hooks", type(model._forward_hooks)())
    layers = prunable_layers(model)
    raw = [original(layer.module) for layer in layers]
    with autocast:
        preds = model(image)
    sum(v.float().pow(2).mean() for v in preds.values()).backward()
    monkeypatch.undo()
    groups: dict[int, tuple[torch.Tensor, list[torch.Tensor]]] = {}
    for layer, w in zip(layers, raw):
        s = layer.module.parametrizations.weight[0].sparse_threshold
        groups.setdefault(id(s), (s, []))[1].append(w)
    for s, ws in groups.values():
        products = torch._foreach_mul(torch._foreach_sign([w.detach() for w in ws]), [w.grad for w in ws])
        t = torch.sigmoid(s.detach())
        s.grad = (-torch.stack([p.sum() for p in products]).sum() * t * (1 - t)).reshape(s.shape)


@pytest.mark.parametrize("kernel", [True, False], ids=["kernel", "torch-ops"])
@pytest.mark.parametrize("precision", ["float32", "bf16"])
@pytest.mark.parametrize("method", ["adapmtl", "adapmtl_global_threshold", "adapmtl_layer_thresholds", "str"])
def test_fused_soft_thresholds_compute_the_per_layer_step(method, precision, kernel, monkeypatch):
    """All layers' S(W) in one autograd node (`SoftShrinkAll`, a speed change) give exactly the forward values and
    weight gradients of per-layer softshrink, in float32 and under bf16 autocast (where the node hands the
    convolutions S already cast, once for the whole buffer), through the compiled kernel (CPU) and through torch ops
    (CUDA). The threshold gradients: the torch ops give exactly those of the separate per-layer pass (float32 sums in
    torch's order); the kernel sums in float64 in its own fixed order, so its gradients agree to float32 rounding."""
    import copy

    from mtlprune.core.pruning.soft_threshold import SoftThreshold

    autocast = torch.autocast("cpu", dtype=torch.bfloat16, enabled=precision == "bf16")
    model, strategy, ctx = _set_up(method)
    model._soft_threshold_plan.use_kernel = kernel
    if hasattr(strategy, "mechanism"):
        strategy.mechanism.project(ctx, ctx.cfg.train.iterations)  # AdapMTL starts dense: prune to the target
    model.to(memory_format=torch.channels_last).train()
    image = torch.rand(4, 3, 24, 32, generator=torch.Generator().manual_seed(1))
    params = [original(layer.module) for layer in prunable_layers(model)] + list(strategy.thresholds.values())
    seen = []  # the dtype a layer's weight has inside the forward pass: the fused node's output
    hook = prunable_layers(model)[0].module.register_forward_pre_hook(lambda m, args: seen.append(m.weight.dtype))
    calls = []  # a layer's own parametrization is not evaluated: its value comes from the seeded cache
    monkeypatch.setattr(SoftThreshold, "forward", lambda self, w: calls.append(w) or self.fused)
    with autocast:
        outs = model(image)
    hook.remove()
    monkeypatch.undo()
    assert seen == [torch.bfloat16 if precision == "bf16" else torch.float32]
    assert calls == []
    sum(v.float().pow(2).mean() for v in outs.values()).backward()
    fused = [p.grad.clone() for p in params]
    assert all(g is not None and torch.isfinite(g).all() for g in fused)
    n_thresholds = len(strategy.thresholds)
    assert any(float(g) != 0 for g in fused[-n_thresholds:])  # the thresholds do get a gradient
    for p in params:
        p.grad = None
    twin = copy.deepcopy(model)  # a copy computes from its own weights (the plan is the model's attribute)
    _per_layer_reference(model, image, monkeypatch, autocast)
    for a, p in zip(fused[:-n_thresholds], params):
        assert torch.equal(a, p.grad)
    for a, p in zip(fused[-n_thresholds:], params[-n_thresholds:]):
        if kernel:
            torch.testing.assert_close(a, p.grad, rtol=1e-5, atol=1e-9)
        else:
            assert torch.equal(a, p.grad)
    with torch.no_grad():
        for p in twin.parameters():
            p.mul_(0.5)
    assert not torch.equal(twin(image)["seg"], model(image)["seg"])


def test_a_forward_pass_that_raises_leaves_no_cached_weights():
    """The fused node seeds torch's parametrization cache for one forward pass; an exception inside the pass must
    not leave it on (later passes would see this pass's weights)."""
    from torch.nn.utils import parametrize

    model, strategy, ctx = _set_up("adapmtl")
    model.train()
    with pytest.raises(RuntimeError):
        model(torch.rand(2, 5, 24, 32))  # 5 channels: the first convolution raises
    assert parametrize._cache_enabled == 0 and not parametrize._cache
    assert all(m.fused is None for m in model._soft_threshold_plan.modules)
    out = model(torch.rand(2, 3, 24, 32))["seg"]
    assert parametrize._cache_enabled == 0 and not parametrize._cache
    assert out.requires_grad


def test_an_enclosing_parametrize_cache_keeps_its_weights():
    """A caller that takes gradients w.r.t. the effective weights (saliency) holds them in its own `cached()`
    context: the forward pass uses those tensors (the fused node does not replace them), and the cache is the
    caller's again afterwards."""
    from torch.nn.utils import parametrize

    model, strategy, ctx = _set_up("adapmtl")
    strategy.mechanism.project(ctx, ctx.cfg.train.iterations)
    model.train()
    layers = prunable_layers(model)
    with parametrize.cached():
        weights = [layer.module.weight for layer in layers]
        before = dict(parametrize._cache)
        loss = sum(v.float().pow(2).mean() for v in model(torch.rand(2, 3, 24, 32)).values())
        grads = torch.autograd.grad(loss, weights, allow_unused=True)
        assert parametrize._cache == before
    assert all(g is not None for g in grads)
    assert parametrize._cache_enabled == 0 and not parametrize._cache


@pytest.mark.parametrize("sparsity", [0.3, 0.9, 0.99])
def test_projection_hits_any_budget_whatever_the_learned_offsets(sparsity):
    model, strategy, ctx = _set_up("adapmtl", sparsity)
    with torch.no_grad():  # very different per-component thresholds, as if learned
        for offset, p in zip([-2.0, 0.5, 1.5, 3.0], strategy.thresholds.values()):
            p.add_(offset)
    before = {g: float(p.detach()) for g, p in strategy.thresholds.items()}
    strategy.mechanism.project(ctx, ctx.cfg.train.iterations)  # past the ramp: the full target
    assert abs(overall_sparsity(model) - sparsity) < 1e-3
    # one common shift: the learned differences between components survive the projection
    after = {g: float(p.detach()) for g, p in strategy.thresholds.items()}
    shifts = [after[g] - before[g] for g in before]
    assert max(shifts) - min(shifts) < 1e-9


def test_faithful_freeze_drops_threshold_gradients_once_the_target_is_reached():
    model, strategy, ctx = _set_up("adapmtl", 0.5, mechanism="faithful", init=0.0)  # sigmoid(0) = 0.5 prunes all
    assert overall_sparsity(model) >= 0.5
    for p in strategy.thresholds.values():
        p.grad = torch.ones_like(p)
    strategy.before_step(ctx, 0)
    assert all(p.grad is None for p in strategy.thresholds.values()) and strategy.mechanism.frozen_steps == 1
    model, strategy, ctx = _set_up("adapmtl", 0.5, mechanism="faithful")  # init −15: dense, keeps learning
    for p in strategy.thresholds.values():
        p.grad = torch.ones_like(p)
    strategy.before_step(ctx, 0)
    assert all(p.grad is not None for p in strategy.thresholds.values()) and strategy.mechanism.frozen_steps == 0


def test_faithful_mechanism_shares_the_weights_group_and_controlled_has_its_own():
    _, faithful, ctx = _set_up("adapmtl", mechanism="faithful")
    assert faithful.param_groups(ctx.model, ctx.cfg.train) == []
    _, controlled, ctx = _set_up("adapmtl", threshold_travel=3.0)
    (group,) = controlled.param_groups(ctx.model, ctx.cfg.train)
    assert group["lr"] == pytest.approx(3.0 / ctx.cfg.train.iterations)
    assert {id(p) for p in group["params"]} == {id(p) for p in controlled.thresholds.values()}


def test_adaptive_weighting_follows_the_relative_loss_change():
    wt = build_weighting("adaptive", TASKS, {"warmup": 0.1, "window": 0.03}, 100)  # warm-up 10 steps, window 3
    assert (wt.warmup, wt.window) == (10, 3)
    losses = lambda k: {"seg": torch.tensor(1.0 + (k % 2)), "depth": torch.tensor(2.0 + 0.1 * (k % 2)),  # noqa: E731
                        "normal": torch.tensor(3.0)}
    for k in range(12):
        _, w = wt(losses(k), k)
        assert w == {t: 1.0 for t in TASKS}  # nothing before warm-up + a full window
    for k in range(12, 20):
        total, w = wt(losses(k), k)
    assert sum(w.values()) == pytest.approx(3.0)  # normalised to T, not to a hard-coded 3... which T happens to be
    assert w["normal"] == 0.0 and w["seg"] > w["depth"] > 0  # a flat loss gets no weight; the jumpy one the most
    assert float(total) == pytest.approx(sum(w[t] * float(losses(19)[t]) for t in TASKS), rel=1e-6)
    five = build_weighting("adaptive", ("a", "b", "c", "d", "e"), {"warmup": 0.0, "window": 0.02}, 100)
    for k in range(4):
        _, w5 = five({t: torch.tensor(1.0 + k * (i + 1)) for i, t in enumerate("abcde")}, k)
    assert sum(w5.values()) == pytest.approx(5.0)  # the code's hard-coded 3 would be wrong here


def test_adaptive_weighting_rejects_bad_fractions():
    with pytest.raises(ValueError, match="warmup in \\[0, 1\\)"):
        build_weighting("adaptive", TASKS, {"warmup": 2.0}, 100)
    with pytest.raises(ValueError, match="windw.*valid: warmup, window"):
        build_weighting("adaptive", TASKS, {"windw": 0.1}, 100)


def test_adapmtl_defaults_to_adaptive_weighting_and_other_weightings_plug_in():
    assert make_config("quick", "adapmtl", 0.9).weighting.name == "adaptive"
    assert dict(make_config("quick", "adapmtl", 0.9).weighting.params) == {"window": 0.1}
    assert make_config("quick", "adapmtl", 0.9, weighting="dwa").weighting.name == "dwa"
    assert make_config("quick", "magnitude_global", 0.9).weighting.name == "equal"
    with pytest.raises(ValueError, match="pruning parameter mechanism='fast'"):
        make_config("smoke", "adapmtl", 0.9, method_params={"mechanism": "fast"})


def test_smoke_run_reaches_the_target_per_component_and_exports_what_it_trained():
    cfg = make_config("smoke", "adapmtl", 0.9)
    s = runner.run(cfg, 0, QUIET)
    assert abs(s["sparsity"]["overall"] - 0.9) <= 0.005
    comps = s["sparsity"]["components"]
    assert max(comps.values()) - min(comps.values()) > 0.01  # each component found its own sparsity
    hist = load_history(run_id(cfg), 0)
    train = hist[hist["split"] == "train"]
    for name in ["threshold/backbone", "threshold/seg", "weight/seg", "sparsity/normal", "budget"]:
        assert name in train.columns and train[name].notna().all(), name
    # the exported weights (thresholded, baked in) give exactly the summary's test metrics in a plain model
    model = build_model(cfg.model, cfg.tasks)
    model.load_state_dict(torch.load(paths.seed_dir(run_id(cfg), 0) / "model.pt"))
    metrics, _ = evaluate(model, loading.load_data(cfg, "test", False), cfg.tasks, torch.device("cpu"), cfg.train)
    assert metrics == s["metrics"]


def test_scratch_start_needs_no_dense_weights():
    cfg = make_config("smoke", "adapmtl", 0.9, method_params={"start": "scratch"})
    assert not build_strategy(cfg.pruning).needs_dense
    s = runner.run(cfg, 0, QUIET)
    assert abs(s["sparsity"]["overall"] - 0.9) <= 0.005


def test_cli_takes_method_parameters_and_names_bad_ones():
    import subprocess
    import sys

    base = [sys.executable, "-m", "mtlprune", "run", "--profile", "smoke", "--method", "adapmtl", "--sparsity", "0.9",
            "--no-progress", "--json"]
    ok = subprocess.run(base + ["--param", "mechanism=faithful", "--param", "init=0.0"], capture_output=True,
                        text=True, cwd=paths.REPO_ROOT, timeout=300)
    assert ok.returncode == 0, ok.stderr[-2000:]
    import json

    out = json.loads(ok.stdout.strip().splitlines()[-1])
    assert out["sparsity"]["overall"] > 0.9  # sigmoid(0) = 0.5 prunes almost every weight: frozen from the start
    bad = subprocess.run(base + ["--param", "mechanism=fast"], capture_output=True, text=True, cwd=paths.REPO_ROOT,
                         timeout=300)
    assert bad.returncode == 2 and "pruning parameter mechanism='fast'" in bad.stderr
