"""The real multi-domain benchmark converted from installed packages (`core.data.packaged`): the Decathlon layout the
one loader reads, fixed stratified splits that never share an image, grey replicated to three channels, the counts
and licences recorded; and a multi-domain run on it."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from mtlprune.core.data import packaged
from mtlprune.core.data.domains import load_domain
from mtlprune.core.identity import run_id
from mtlprune.runs.multidomain import run_mdl
from mtlprune.study.profiles import make_mdl_config

TINY = packaged.PackagedSpec(size=16, max_train=40, max_val=12, max_test=12, n_source=60)


@pytest.fixture(scope="module")
def converted(tmp_path_factory):
    root = tmp_path_factory.mktemp("packaged") / TINY.dirname()
    return packaged.convert(TINY, root, progress=False)


def test_every_domain_and_split_in_the_decathlon_layout(converted):
    meta = json.loads((converted / "meta.json").read_text())
    assert meta["domains"] == list(packaged.PACKAGED_DOMAINS) and meta["source"] == "fashion"
    assert set(meta["licences"]) == set(packaged.PACKAGED_DOMAINS)
    for domain in packaged.PACKAGED_DOMAINS:
        splits = ("train", "val", "test", "source") if domain == "fashion" else ("train", "val", "test")
        for split in splits:
            ann = json.loads((converted / "annotations" / f"{domain}_{split}.json").read_text())
            x, y, names = load_domain(converted, domain, split, TINY.size)  # the real Decathlon's loader
            assert names == packaged.NAMES[domain] and len(y) == len(ann["images"]) == sum(
                meta["counts"][domain][split].values())
            assert x.shape[1:] == (3, 16, 16) and x.dtype == torch.uint8
            assert int((x[:, 0].int() - x[:, 1].int()).abs().max()) <= 2  # grey, replicated (JPEG rounding aside)
            assert [int((y == c).sum()) for c in range(len(names))] == list(meta["counts"][domain][split].values())


def test_splits_are_fixed_stratified_and_share_no_image(converted):
    meta = json.loads((converted / "meta.json").read_text())
    for domain, splits in meta["origins"].items():
        seen: set = set()
        for split, where in splits.items():
            keys = {(split == "test" and domain == "fashion", tuple(w) if isinstance(w, list) else w) for w in where}
            assert len(keys) == len(where), (domain, split)  # no image twice
            if domain != "textures":
                assert not keys & seen, (domain, split)  # disjoint from the other splits (fashion: per official set)
            seen |= keys
        if domain in ("mnist", "faces", "textures"):  # balanced domains stay balanced in every split
            for split, per_class in meta["counts"][domain].items():
                assert max(per_class.values()) - min(per_class.values()) <= 1, (domain, split)
    rows = {s: {r for r, _ in meta["origins"]["textures"][s]} for s in ("train", "val", "test")}
    assert max(rows["train"]) + packaged.TEXTURE_PATCH <= min(rows["val"])  # disjoint bands of the photos
    assert max(rows["val"]) + packaged.TEXTURE_PATCH <= min(rows["test"])
    again = packaged.convert(TINY, converted.parent / "again", progress=False)
    assert json.loads((again / "meta.json").read_text())["origins"] == meta["origins"]  # fixed by the seed


def test_the_solar_cells_are_labelled_by_defect_probability():
    images, labels = packaged.solar()
    assert images.shape == (2624, 300, 300) and images.dtype == np.uint8
    assert np.bincount(labels).tolist() == [1508 + 295, 106 + 715]  # p in {0, 1/3} functional, {2/3, 1} defective


def test_a_multi_domain_run_on_the_real_domains(tmp_path, monkeypatch):
    """The smoke run on the packaged benchmark: every domain trained and scored (through the loader's one path)."""
    monkeypatch.setenv("MTLPRUNE_DATA", str(tmp_path))
    tiny = {k: getattr(TINY, k) for k in ("size", "max_train", "max_val", "max_test", "n_source", "seed", "version")}
    cfg = make_mdl_config("smoke", "budget_aware", 0.5, overrides={
        "source.data.synthetic": None, "source.data.packaged": {**tiny, "domains": packaged.PACKAGED_DOMAINS},
        "source.data.domains": packaged.PACKAGED_DOMAINS, "source.data.source": "fashion",
        "train.iterations": 6, "source.iterations": 6})
    summary = run_mdl(cfg, 0, progress=False)
    assert set(summary["accuracy"]) == set(packaged.PACKAGED_DOMAINS)
    assert all(0 <= a <= 100 for a in summary["accuracy"].values())
    assert run_id(cfg) != run_id(make_mdl_config("smoke", "budget_aware", 0.5))
    with pytest.raises(ValueError, match="packaged benchmark pretrains on 'fashion'"):
        make_mdl_config("smoke", "budget_aware", 0.5, overrides={
            "source.data.synthetic": None, "source.data.packaged": {**tiny, "domains": packaged.PACKAGED_DOMAINS},
            "source.data.domains": packaged.PACKAGED_DOMAINS, "source.data.source": "mnist"})
