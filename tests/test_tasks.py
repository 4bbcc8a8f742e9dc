"""The task axis: a task is one registered spec, and a new one plugs into the model, the losses, the metrics, Δ and
the flip augmentation without edits elsewhere."""

from __future__ import annotations

import math

import pytest
import torch

from mtlprune.core import tasks
from mtlprune.core.config import TASKS as DEFAULT_TASKS
from mtlprune.core.tasks import task_losses
from mtlprune.core.metrics import METRICS, Meter, delta_t
from mtlprune.core.tasks import TaskMeters
from mtlprune.core.models import build_model
from mtlprune.study.profiles import make_config
from mtlprune.core.train import augment
from mtlprune.core.identity import run_id


class _L1Meter(Meter):
    def __init__(self) -> None:
        self.n, self.err = 0, 0.0

    def update(self, pred, batch):
        self.err += float((pred - batch["edges"]).abs().sum())
        self.n += pred.numel()

    def compute(self):
        return {"err": self.err / self.n if self.n else math.nan}


@pytest.fixture
def edges(monkeypatch):
    """A toy task registered for one test: an edge map (1 channel, L1), mirrored with the image, no sign change."""
    spec = tasks.TaskSpec("edges", "Edges", "edges", 1, (("err", -1),), "err",
                          lambda pred, batch: (pred - batch["edges"]).abs().mean(), _L1Meter,
                          lambda train: (lambda b, h, w: torch.zeros(b, 1, h, w)), "#999999")
    monkeypatch.setitem(tasks.TASKS._items, "edges", spec)
    monkeypatch.setitem(METRICS, "edges", list(spec.metrics))
    return spec


def test_nyu_tasks_are_registered_with_consistent_specs():
    assert set(DEFAULT_TASKS) <= set(tasks.TASKS.names())
    cfg = make_config("smoke", "dense", 0.0)
    model = build_model(cfg.model, cfg.tasks).eval()
    with torch.no_grad():
        out = model(torch.rand(2, 3, 24, 32))
    for t in cfg.tasks:
        spec = tasks.task_spec(t)
        assert out[t].shape[1] == spec.channels
        assert spec.primary in dict(spec.metrics) and dict(spec.metrics) == dict(METRICS[t])
    norms = out["normal"].pow(2).sum(1).sqrt()  # the normal spec's activation: unit vectors
    assert torch.allclose(norms, torch.ones_like(norms), atol=1e-5)


def test_a_registered_task_plugs_into_model_losses_metrics_delta_and_flip(edges):
    cfg = make_config("smoke", "dense", 0.0)
    torch.manual_seed(0)
    model = build_model(cfg.model, ("seg", "edges"))
    x = torch.rand(4, 3, 24, 32)
    batch = {"image": x, "label": torch.randint(0, 13, (4, 24, 32)), "edges": torch.rand(4, 1, 24, 32)}
    preds = model(x)
    assert set(preds) == {"seg", "edges"} and preds["edges"].shape == (4, 1, 24, 32)
    losses = task_losses(preds, batch)
    assert set(losses) == {"seg", "edges"} and all(torch.isfinite(v) for v in losses.values())
    meters = TaskMeters(("seg", "edges"))
    meters.update({k: v.detach() for k, v in preds.items()}, batch)
    metrics = meters.compute()
    assert set(metrics["edges"]) == {"err"}
    worse = {**metrics, "edges": {"err": 2 * metrics["edges"]["err"]}}
    assert delta_t(worse, metrics)["edges"] == pytest.approx(-100.0)  # lower is better: doubling it is −100 %
    gen = torch.Generator().manual_seed(3)
    flipped = augment(batch, gen)
    mirrored = flipped["image"].flip(-1).eq(batch["image"]).flatten(1).all(1)
    assert mirrored.any()  # some samples flipped ...
    for i in torch.nonzero(mirrored).flatten():  # ... and their edge maps with them
        assert torch.equal(flipped["edges"][i], batch["edges"][i].flip(-1))


def test_the_dataset_axis_keeps_nyu_ids_and_names_bad_choices(monkeypatch):
    """`data.dataset` (default nyuv2) is hashed only when it differs from the value it was introduced with, so the
    NYU-v2 runs keep their ids; another dataset changes them; an unknown dataset or a task it lacks is one error."""
    from dataclasses import replace

    from mtlprune.core.data import datasets

    plain = make_config("smoke", "adapmtl", 0.9)
    assert run_id(make_config("smoke", "adapmtl", 0.9, overrides={"data.dataset": "nyuv2"})) == run_id(plain)
    other = replace(datasets.dataset_spec("nyuv2"), name="other")
    monkeypatch.setitem(datasets.DATASETS._items, "other", other)
    moved = make_config("smoke", "adapmtl", 0.9, overrides={"data.dataset": "other"})
    assert run_id(moved) != run_id(plain) and run_id(moved.dense) != run_id(plain.dense)
    with pytest.raises(ValueError, match="unknown dataset 'nowhere'; valid: .*nyuv2"):
        make_config("smoke", "dense", 0.0, overrides={"data.dataset": "nowhere"})
    monkeypatch.setitem(datasets.DATASETS._items, "segonly", replace(other, name="segonly", tasks=("seg",)))
    with pytest.raises(ValueError, match=r"tasks \['depth', 'normal'\] are not tasks of dataset 'segonly'"):
        make_config("smoke", "dense", 0.0, overrides={"data.dataset": "segonly"})
