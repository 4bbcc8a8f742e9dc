"""Kernel numerics: every convolution the smoke and quick models train through gets its gradients right on this CPU
(against float64), including the 1×1 strided layers routed around oneDNN's defect (`models.convolution`)."""

from __future__ import annotations

import copy

import pytest
import torch
from torch import nn

from mtlprune.core.models import build_model
from mtlprune.core.models.convolution import ONEDNN_WIDEST_IC_BLOCK, StridedPointwiseConv
from mtlprune.study.profiles import make_config


def _rel_err(a: torch.Tensor, ref: torch.Tensor) -> float:
    return float((a.detach().double() - ref.detach()).abs().max() / ref.detach().abs().max().clamp_min(1e-12))


@pytest.mark.parametrize("cin", [1, 3, 4, 6, 7, 8, 12])
def test_strided_pointwise_gradients_match_float64_where_onednn_is_faulty(cin):
    """The shapes of uxlfoundation/oneDNN#6035 (nn.Conv2d gave weight gradients wrong by up to 160 % here, or heap
    corruption); repeated, because the fault depended on what lay past the workspace."""
    torch.manual_seed(cin)
    conv = StridedPointwiseConv(cin, 8, 1, 2, bias=False).to(memory_format=torch.channels_last)
    ref = nn.Conv2d(cin, 8, 1, 2, bias=False).double()
    ref.weight.data.copy_(conv.weight.data)
    for _ in range(10):
        x = torch.randn(8, cin, 12, 16).to(memory_format=torch.channels_last).requires_grad_()
        conv.weight.grad = ref.weight.grad = None
        y = conv(x)
        g = torch.randn_like(y)
        y.backward(g)
        x64 = x.detach().double().requires_grad_()
        y64 = ref(x64)
        y64.backward(g.double())
        assert _rel_err(y, y64) < 1e-5 and _rel_err(x.grad, x64.grad) < 1e-5
        assert _rel_err(conv.weight.grad, ref.weight.grad) < 1e-5


def test_wide_strided_pointwise_is_the_ordinary_kernel_bit_for_bit():
    """From 16 input channels on, the layer is plain nn.Conv2d: the quick and full models compute what they did."""
    torch.manual_seed(0)
    cin = ONEDNN_WIDEST_IC_BLOCK
    ours = StridedPointwiseConv(cin, 32, 1, 2, bias=False).to(memory_format=torch.channels_last)
    plain = nn.Conv2d(cin, 32, 1, 2, bias=False).to(memory_format=torch.channels_last)
    plain.load_state_dict(ours.state_dict())
    x = torch.randn(8, cin, 24, 32).to(memory_format=torch.channels_last)
    xa, xb = x.clone().requires_grad_(), x.clone().requires_grad_()
    ya, yb = ours(xa), plain(xb)
    ya.square().sum().backward()
    yb.square().sum().backward()
    assert torch.equal(ya, yb) and torch.equal(ours.weight.grad, plain.weight.grad) and torch.equal(xa.grad, xb.grad)


@pytest.mark.parametrize("profile", ["smoke", "quick"])
def test_every_layer_of_the_multitask_model_gets_float64_gradients(profile):
    """One training-layout (channels-last, float32) forward/backward of the whole model against its float64 copy:
    a faulty kernel at any layer shape the profile uses shows as a wrong gradient of that layer's weight."""
    cfg = make_config(profile)
    torch.manual_seed(0)
    model = build_model(cfg.model, cfg.tasks).train()
    ref = copy.deepcopy(model).double()
    model.to(memory_format=torch.channels_last)
    spec = cfg.data.synthetic
    ref_grads = dict(ref.named_parameters())
    errors: dict[str, float] = {}
    for _ in range(5):  # the oneDNN fault depended on what lay past its workspace: one pass could miss it
        model.zero_grad(set_to_none=True)
        ref.zero_grad(set_to_none=True)
        x = torch.randn(4, 3, spec.height, spec.width)
        out = model(x.to(memory_format=torch.channels_last))
        out64 = ref(x.double())
        probes = {t: torch.randn(o.shape) for t, o in out.items()}  # a linear loss: no gradient cancels exactly
        sum((o * probes[t]).mean() for t, o in out.items()).backward()
        sum((o * probes[t].double()).mean() for t, o in out64.items()).backward()
        for n, p in model.named_parameters():
            if p.grad is not None and ref_grads[n].grad.abs().max() > 0:
                errors[n] = max(errors.get(n, 0.0), _rel_err(p.grad, ref_grads[n].grad))
    assert len(errors) > 10
    worst = max(errors, key=errors.get)
    assert errors[worst] < 1e-3, f"{worst}: relative error {errors[worst]:.1e} against float64"


def test_only_models_that_take_the_routed_path_change_their_ids():
    """The routed layers compute other (correct) gradients, so runs of models that have one are salted with the
    revision (identity.REVISIONS); models without one (full, or quick's at width 16) keep their ids."""
    from mtlprune.core import identity

    smoke, quick = make_config("smoke", "snip", 0.9), make_config("quick", "snip", 0.9, overrides={"model.width": 16})
    assert identity.resolved(smoke)["revisions"] == {"pointwise_stride": 2}
    assert identity.resolved(smoke)["dense"]["revisions"] == {"pointwise_stride": 2}
    assert "revisions" not in identity.resolved(quick)
    assert "revisions" in identity.resolved(make_config("quick", overrides={"model.width": 8}))  # quick's own width
    assert "revisions" not in identity.resolved(make_config("full", "snip", 0.9))
