"""Schedules and data paths the end-to-end tests only pass through: the gradual magnitude schedule, DiSparse-dynamic's
per-layer ERK densities, the flip augmentation, and the validation-only choice of the best baseline."""

from __future__ import annotations

import json

import pytest
import torch

from mtlprune.core import paths
from mtlprune.runs import multitask as runner
from mtlprune.core.models import build_model
from mtlprune.study.profiles import make_config
from mtlprune.core.pruning import TrainContext, build_strategy
from mtlprune.core.pruning.base import cubic_ramp
from mtlprune.core.pruning.masks import effective_weights, get_masks, plain_state_dict
from mtlprune.core.runtime import Runtime
from mtlprune.core.train import augment


def _set_up(cfg):
    torch.manual_seed(0)
    model = build_model(cfg.model, cfg.tasks)
    strategy = build_strategy(cfg.pruning)
    strategy.install(model)
    batch = {"image": torch.randn(4, 3, 24, 32), "label": torch.randint(0, 13, (4, 24, 32)),
             "depth": torch.rand(4, 1, 24, 32) + 0.5, "normal": torch.nn.functional.normalize(torch.randn(4, 3, 24, 32), dim=1)}
    ctx = TrainContext(model=model, cfg=cfg, device=torch.device("cpu"), train_batches=lambda: iter([batch] * 100))
    ctx.dense_state = plain_state_dict(build_model(cfg.model, cfg.tasks))
    strategy.setup(ctx)
    return model, strategy, ctx


def _sparsity(model) -> float:
    w = effective_weights(model)
    return sum(int((v == 0).sum()) for v in w.values()) / sum(v.numel() for v in w.values())


def test_gradual_magnitude_follows_the_cubic_ramp_and_only_grows():
    cfg = make_config("smoke", "gradual_magnitude", 0.9, overrides={"train.iterations": 100})
    model, strategy, ctx = _set_up(cfg)
    assert _sparsity(model) == pytest.approx(0.0, abs=1e-3)  # start = 0: nothing pruned before the ramp
    seen = []
    for step in range(1, 101):
        strategy.after_step(ctx, step)
        if step % 5 == 0:  # every = 0.05 of the run
            assert _sparsity(model) == pytest.approx(cubic_ramp(0.9, step, 0, 70), abs=2e-3)
        seen.append(_sparsity(model))
    assert all(b >= a - 1e-9 for a, b in zip(seen, seen[1:]))  # masks only shrink
    assert seen[69] == pytest.approx(0.9, abs=2e-3) and seen[-1] == pytest.approx(0.9, abs=2e-3)


def test_disparse_dynamic_keeps_erk_densities_and_ends_on_them():
    cfg = make_config("smoke", "disparse_dynamic", 0.9, overrides={"train.iterations": 40})
    model, strategy, ctx = _set_up(cfg)
    density = strategy.density
    masks = get_masks(model)
    for n, m in masks.items():  # initial random masks at the ERK density of each layer
        assert int(m.sum()) == max(1, round(density[n] * m.numel()))
    total = sum(m.numel() for m in masks.values())
    assert sum(density[n] * masks[n].numel() for n in masks) / total == pytest.approx(0.1, rel=1e-3)
    assert len({round(d, 6) for d in density.values()}) > 1  # ERK: layers differ
    strategy.after_step(ctx, 1)  # an update step: prune and regrow by task gradients
    for step in range(2, 41):
        strategy.after_step(ctx, step)
    assert strategy.finished
    final = get_masks(model)
    for n, m in final.items():  # after the final drop, every layer sits on its ERK density
        assert int(m.sum()) == max(1, round(density[n] * m.numel()))
    kept = sum(int(m.sum()) for m in final.values()) / sum(m.numel() for m in final.values())
    assert kept == pytest.approx(0.1, abs=5e-3)


def test_flip_mirrors_every_map_and_negates_the_normals_x_only_for_flipped_samples():
    torch.manual_seed(0)
    batch = {"image": torch.randn(16, 3, 4, 5), "label": torch.randint(0, 13, (16, 4, 5)),
             "depth": torch.rand(16, 1, 4, 5), "normal": torch.randn(16, 3, 4, 5)}
    gen = torch.Generator().manual_seed(3)
    flipped = torch.rand(16, generator=torch.Generator().manual_seed(3)) < 0.5
    assert 0 < int(flipped.sum()) < 16
    out = augment(batch, gen)
    for i in range(16):
        for key in ("image", "label", "depth"):
            expect = batch[key][i].flip(-1) if flipped[i] else batch[key][i]
            assert torch.equal(out[key][i], expect)
        normal = batch["normal"][i].flip(-1) if flipped[i] else batch["normal"][i].clone()
        if flipped[i]:
            normal[0] = -normal[0]
        assert torch.equal(out["normal"][i], normal)
    assert torch.equal(batch["image"], batch["image"])  # the input batch itself is untouched
    assert not torch.equal(out["image"], batch["image"])

