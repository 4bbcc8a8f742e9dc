"""Multi-domain image classification in the Visual Decathlon layout: the loader, and an offline benchmark that writes it.

On disk (the Decathlon release's layout, see `data/README.md`)::

    <root>/annotations/<domain>_<split>.json     COCO-style: images [{id, file_name, width, height}],
                                                 annotations [{id, image_id, category_id}], categories [{id, name}]
    <root>/data/<domain>/<split>/<id>.jpg        file_name is relative to <root>, e.g. data/digits/train/0000001.jpg

The real release withholds its test labels (a test json without `annotations`); the loader then names the fix (use
the release's val as test: `test_split="val"`). Images are resized (shorter side) and centre-cropped to the profile's
size, as the Decathlon's 72-pixel convention does.

The offline benchmark has five visibly different 10-class domains at 32×32: `digits` (scikit-learn's bundled
handwritten digits, **real data**, upsampled from 8×8), `shapes` (ten geometric shapes, random colour, pose and size),
`textures` (sinusoidal gratings in ten orientations), `glyphs` (ten stroke-drawn symbols with random affine jitter) and
`signs` (sign-like plates: five outlines × two colour schemes, with random inner marks). `shapes` also has a larger
`source` split that plays ImageNet's role: the backbone is pretrained on it. Deterministic by seed.
"""

from __future__ import annotations

import hashlib
import json
import shutil
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ..errors import DataError

DOMAINS = ("digits", "shapes", "textures", "glyphs", "signs")
SOURCE = "shapes"  # the domain whose `source` split pretrains the backbone (ImageNet's role)
SPLITS = ("train", "val", "test")
GENERATE_CMD = "python -m mtlprune generate-domains --profile quick"


@dataclass(frozen=True)
class DomainsSpec:
    """Identity of a generated multi-domain benchmark: same spec, same bytes."""

    n_train: int = 500  # per domain
    n_val: int = 100
    n_test: int = 300
    n_source: int = 3000  # the pretraining split of SOURCE
    size: int = 32
    seed: int = 0
    version: int = 1  # bump whenever a generator changes what it writes

    def dirname(self) -> str:
        blob = json.dumps(asdict(self), sort_keys=True)
        return f"domains-{hashlib.sha256(blob.encode()).hexdigest()[:10]}"

    def count(self, split: str) -> int:
        return {"train": self.n_train, "val": self.n_val, "test": self.n_test, "source": self.n_source}[split]


# ---------------------------------------------------------------------------------------------------------------------
# Generators: one image (H, W, 3) uint8 per call, class-conditional
# ---------------------------------------------------------------------------------------------------------------------
def _grid(n: int) -> tuple[np.ndarray, np.ndarray]:
    y, x = np.mgrid[0:n, 0:n].astype(np.float64)
    return (x + 0.5) / n * 2 - 1, (y + 0.5) / n * 2 - 1  # in [-1, 1]


def _colours(rng: np.random.Generator, contrast: float = 0.35) -> tuple[np.ndarray, np.ndarray]:
    while True:
        fg, bg = rng.uniform(0, 1, 3), rng.uniform(0, 1, 3)
        if np.abs(fg - bg).mean() > contrast:
            return fg, bg


def _compose(mask: np.ndarray, fg: np.ndarray, bg: np.ndarray, rng: np.random.Generator, noise: float = 0.04):
    img = mask[..., None] * fg + (1 - mask[..., None]) * bg
    img = img + rng.normal(0, noise, img.shape)
    return (np.clip(img, 0, 1) * 255).round().astype(np.uint8)


def _polygon(x: np.ndarray, y: np.ndarray, k: int, r: float, rot: float) -> np.ndarray:
    """Inside-test of a regular k-gon of circumradius r."""
    ang = np.arctan2(y, x) - rot
    sector = 2 * np.pi / k
    a = np.mod(ang, sector) - sector / 2
    return (np.hypot(x, y) * np.cos(a) <= r * np.cos(sector / 2)).astype(np.float64)


def _shape_mask(cls: int, x: np.ndarray, y: np.ndarray, r: float, rot: float) -> np.ndarray:
    d = np.hypot(x, y)
    xr, yr = x * np.cos(rot) + y * np.sin(rot), -x * np.sin(rot) + y * np.cos(rot)
    if cls == 0:
        return (d <= r).astype(np.float64)  # disc
    if cls == 1:
        return _polygon(x, y, 4, r * 1.2, rot + np.pi / 4)  # square
    if cls == 2:
        return _polygon(x, y, 3, r * 1.25, rot)  # triangle
    if cls == 3:
        w = r * 0.35
        return (((np.abs(xr) <= w) & (np.abs(yr) <= r)) | ((np.abs(yr) <= w) & (np.abs(xr) <= r))).astype(float)
    if cls == 4:
        return ((d <= r) & (d >= 0.55 * r)).astype(np.float64)  # ring
    if cls == 5:
        ang = np.arctan2(yr, xr)
        return (d <= r * (0.55 + 0.45 * np.cos(5 * ang) ** 2)).astype(np.float64)  # five-pointed flower-star
    if cls == 6:
        return ((np.abs(xr) + np.abs(yr) * 0.6) <= r).astype(np.float64)  # diamond (elongated)
    if cls == 7:
        return _polygon(x, y, 6, r * 1.1, rot)  # hexagon
    if cls == 8:
        return ((np.abs(xr) <= r * 1.2) & (np.abs(yr) <= r * 0.3)).astype(np.float64)  # bar
    return ((d <= r) & (np.hypot(xr - 0.45 * r, yr) > 0.8 * r)).astype(np.float64)  # crescent


def gen_shapes(cls: int, rng: np.random.Generator, n: int) -> np.ndarray:
    x, y = _grid(n)
    cx, cy = rng.uniform(-0.3, 0.3, 2)
    mask = _shape_mask(cls, x - cx, y - cy, rng.uniform(0.35, 0.6), rng.uniform(0, 2 * np.pi))
    return _compose(mask, *_colours(rng), rng)


def gen_textures(cls: int, rng: np.random.Generator, n: int) -> np.ndarray:
    x, y = _grid(n)
    theta = np.pi * cls / 10 + rng.normal(0, 0.04)
    freq = rng.uniform(2.0, 4.5)
    wave = 0.5 + 0.5 * np.sin(2 * np.pi * freq * (x * np.cos(theta) + y * np.sin(theta)) + rng.uniform(0, 2 * np.pi))
    return _compose(wave, *_colours(rng, 0.25), rng, noise=0.08)


_GLYPH_STROKES = np.random.default_rng(1234).uniform(-0.7, 0.7, (10, 4, 2, 2))  # 10 classes × 4 strokes × 2 ends


def gen_glyphs(cls: int, rng: np.random.Generator, n: int) -> np.ndarray:
    x, y = _grid(n)
    rot, scale = rng.normal(0, 0.2), rng.uniform(0.85, 1.1)
    shift = rng.uniform(-0.12, 0.12, 2)
    c, s = np.cos(rot), np.sin(rot)
    width = rng.uniform(0.07, 0.12)
    mask = np.zeros_like(x)
    for (a, b) in _GLYPH_STROKES[cls]:
        a = scale * np.array([c * a[0] - s * a[1], s * a[0] + c * a[1]]) + shift
        b = scale * np.array([c * b[0] - s * b[1], s * b[0] + c * b[1]]) + shift
        ab = b - a
        t = np.clip(((x - a[0]) * ab[0] + (y - a[1]) * ab[1]) / max(ab @ ab, 1e-9), 0, 1)
        dist = np.hypot(x - a[0] - t * ab[0], y - a[1] - t * ab[1])
        mask = np.maximum(mask, (dist <= width).astype(np.float64))
    ink, paper = rng.uniform(0, 0.35, 3), rng.uniform(0.7, 1.0, 3)
    return _compose(mask, ink, paper, rng, noise=0.05)


_SIGN_SCHEMES = [(np.array([0.85, 0.1, 0.1]), np.array([0.95, 0.95, 0.95])),  # red rim, white face
                 (np.array([0.1, 0.25, 0.8]), np.array([0.1, 0.25, 0.8]))]  # blue plate


def _plate(outline: int, x: np.ndarray, y: np.ndarray, r: float) -> np.ndarray:
    if outline == 0:
        return (np.hypot(x, y) <= r).astype(np.float64)
    k, scale, rot = [(3, 1.15, -np.pi / 2), (8, 1.0, np.pi / 8), (4, 1.15, np.pi / 4), (4, 1.05, 0.0)][outline - 1]
    return _polygon(x, y, k, r * scale, rot)


def gen_signs(cls: int, rng: np.random.Generator, n: int) -> np.ndarray:
    x, y = _grid(n)
    outline, scheme = cls % 5, cls // 5
    cx, cy = rng.uniform(-0.15, 0.15, 2)
    r = rng.uniform(0.6, 0.8)
    plate = _plate(outline, x - cx, y - cy, r)
    inner = _shape_mask(int(rng.integers(10)), (x - cx) / 0.55, (y - cy) / 0.55, r * 0.6, rng.uniform(0, 6.3))
    rim, face = _SIGN_SCHEMES[scheme]
    bg = rng.uniform(0.2, 0.8, 3) * rng.uniform(0.6, 1.0)
    img = np.where(plate[..., None] > 0, rim, bg)
    if scheme == 0:  # white face inside a red rim, dark symbol
        face_mask = _plate(outline, x - cx, y - cy, 0.72 * r)
        img = np.where(face_mask[..., None] > 0, face, img)
        img = np.where((inner * face_mask)[..., None] > 0, np.array([0.1, 0.1, 0.1]), img)
    else:  # blue plate, white symbol
        img = np.where((inner * plate)[..., None] > 0, np.array([0.95, 0.95, 0.95]), img)
    img = img * rng.uniform(0.7, 1.1) + rng.normal(0, 0.04, img.shape)
    return (np.clip(img, 0, 1) * 255).round().astype(np.uint8)


GENERATORS = {"shapes": gen_shapes, "textures": gen_textures, "glyphs": gen_glyphs, "signs": gen_signs}
CLASS_NAMES = {
    "digits": [str(i) for i in range(10)],
    "shapes": ["disc", "square", "triangle", "cross", "ring", "star", "diamond", "hexagon", "bar", "crescent"],
    "textures": [f"{18 * i} deg" for i in range(10)],
    "glyphs": [f"glyph {chr(65 + i)}" for i in range(10)],
    "signs": [f"{o} {s}" for s in ("red-rim", "blue") for o in ("circle", "triangle", "octagon", "diamond", "square")],
}


def _digits(spec: DomainsSpec) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """scikit-learn's bundled 8×8 handwritten digits (1,797 real images), upsampled; a seeded split."""
    from sklearn.datasets import load_digits

    d = load_digits()
    order = np.random.default_rng(spec.seed).permutation(len(d.target))
    imgs = torch.nn.functional.interpolate(torch.tensor(d.images[order] / 16.0, dtype=torch.float32)[:, None],
                                           size=(spec.size, spec.size), mode="bilinear", align_corners=False)
    imgs = (imgs.clamp(0, 1) * 255).round().to(torch.uint8).repeat(1, 3, 1, 1).permute(0, 2, 3, 1).numpy()
    labels = d.target[order]
    need = spec.n_train + spec.n_val + spec.n_test
    if need > len(labels):
        raise ValueError(f"the digits domain has {len(labels)} images; n_train + n_val + n_test = {need} is too many")
    out, i = {}, 0
    for split in SPLITS:
        k = spec.count(split)
        out[split] = (imgs[i:i + k], labels[i:i + k])
        i += k
    return out


def _generated(domain: str, split: str, spec: DomainsSpec) -> tuple[np.ndarray, np.ndarray]:
    salt = DOMAINS.index(domain) * 10 + (list(SPLITS) + ["source"]).index(split)
    rng = np.random.default_rng([spec.seed, salt])
    n = spec.count(split)
    labels = np.arange(n) % 10
    rng.shuffle(labels)
    imgs = np.stack([GENERATORS[domain](int(c), rng, spec.size) for c in labels])
    return imgs, labels


def write_split(tmp: Path, domain: str, split: str, imgs: np.ndarray, labels: np.ndarray, names: list[str],
                description: str) -> None:
    """One domain's split in the Decathlon layout: JPEG images (N×H×W×3 uint8) under data/<domain>/<split>/ and the
    COCO-style annotations/<domain>_<split>.json (category ids 1..K in `names` order)."""
    from PIL import Image

    folder = tmp / "data" / domain / split
    folder.mkdir(parents=True, exist_ok=True)
    images, annotations = [], []
    for i, (img, lab) in enumerate(zip(imgs, labels), 1):
        name = f"data/{domain}/{split}/{i:07d}.jpg"
        Image.fromarray(img).save(tmp / name, quality=95)
        images.append({"id": i, "file_name": name, "width": int(img.shape[1]), "height": int(img.shape[0])})
        annotations.append({"id": i, "image_id": i, "category_id": 1 + int(lab)})
    ann = {"info": {"description": f"{description} ({split})"}, "images": images, "annotations": annotations,
           "categories": [{"id": 1 + k, "name": nm} for k, nm in enumerate(names)]}
    (tmp / "annotations").mkdir(exist_ok=True)
    (tmp / "annotations" / f"{domain}_{split}.json").write_text(json.dumps(ann))


def write_benchmark(root: Path, splits: Any, meta: dict[str, Any], progress: bool, desc: str) -> Path:
    """Write `splits` (an iterable of (domain, split, images, labels, class names, description)) under `root` in the
    Decathlon layout, `meta.json` last, atomically (a temporary folder renamed; nothing half-written stays)."""
    from tqdm import tqdm

    if (root / "meta.json").exists():
        return root
    tmp = root.with_name(root.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    try:
        for domain, split, imgs, labels, names, description in tqdm(splits, desc=desc, disable=not progress,
                                                                    leave=False):
            write_split(tmp, domain, split, imgs, labels, names, description)
        (tmp / "meta.json").write_text(json.dumps(meta, indent=2))
        if root.exists():
            shutil.rmtree(root)
        tmp.rename(root)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return root


def generate(spec: DomainsSpec, root: Path, progress: bool = True) -> Path:
    """Write every domain and split of `spec` under `root` in the Decathlon layout (atomically: tmp dir + rename)."""
    jobs = [(d, s) for d in DOMAINS for s in SPLITS] + [(SOURCE, "source")]

    def splits():
        digits = _digits(spec)
        for domain, split in jobs:
            imgs, labels = digits[split] if domain == "digits" else _generated(domain, split, spec)
            yield domain, split, imgs, labels, CLASS_NAMES[domain], f"mtlprune generated domain {domain}"

    return write_benchmark(root, splits(), {"spec": asdict(spec), "domains": list(DOMAINS)}, progress,
                           "generating domains")


# ---------------------------------------------------------------------------------------------------------------------
# The loader (real release or generated, one code path)
# ---------------------------------------------------------------------------------------------------------------------
def load_domain(root: Path, domain: str, split: str, size: int) -> tuple[torch.Tensor, torch.Tensor, list[str]]:
    """(images uint8 N×3×size×size, labels 0..K-1, class names) of one domain and split."""
    from PIL import Image

    ann_path = root / "annotations" / f"{domain}_{split}.json"
    # `generate-domains` is a no-op once meta.json exists: a damaged generated benchmark is fixed by removing it
    fix = (f"this is the generated benchmark: delete it and it is written again on the next run: rm -r '{root}'"
           if (root / "meta.json").exists() else
           f"generate the offline benchmark with `{GENERATE_CMD}`, or put the Visual Decathlon release "
           f"(annotations/ and data/) at {root} (see data/README.md)")
    if not ann_path.exists():
        raise DataError(f"{ann_path} is missing (domain {domain!r}, split {split!r}). Fix: {fix}")
    try:
        ann = json.loads(ann_path.read_text())
        images = {im["id"]: im["file_name"] for im in ann["images"]}
        cats = sorted(ann["categories"], key=lambda c: c["id"])
    except (json.JSONDecodeError, KeyError, TypeError) as exc:
        raise DataError(f"{ann_path} is not a COCO-style Decathlon annotation file ({exc}). Fix: {fix}") from None
    if "annotations" not in ann:
        raise DataError(f"{ann_path} has no labels (the Decathlon release withholds test labels): use the release's "
                        f"val split as test (mdl data.test_split=val) and carve validation from train")
    index = {c["id"]: k for k, c in enumerate(cats)}
    pairs = sorted((a["image_id"], index[a["category_id"]]) for a in ann["annotations"])
    xs = np.empty((len(pairs), size, size, 3), dtype=np.uint8)
    for i, (image_id, _) in enumerate(pairs):
        path = root / images[image_id]
        try:
            with Image.open(path) as im:
                xs[i] = _fit(im.convert("RGB"), size)
        except OSError as exc:
            raise DataError(f"{path} cannot be read ({exc}). Fix: {fix}") from None
    ys = torch.tensor([k for _, k in pairs], dtype=torch.long)
    return torch.from_numpy(xs).permute(0, 3, 1, 2).contiguous(), ys, [c["name"] for c in cats]


def _fit(im, size: int) -> np.ndarray:
    """Shorter side to `size`, then a centre crop (the Decathlon's resize convention, at our size)."""
    from PIL import Image

    w, h = im.size
    if (w, h) != (size, size):
        s = size / min(w, h)
        im = im.resize((max(size, round(w * s)), max(size, round(h * s))), Image.BILINEAR)
        w, h = im.size
        left, top = (w - size) // 2, (h - size) // 2
        im = im.crop((left, top, left + size, top + size))
    return np.asarray(im, dtype=np.uint8)
