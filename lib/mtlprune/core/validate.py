"""Validation of a whole config (multi-task `RunConfig`, multi-domain `MDLConfig` with its source) before anything
runs or trains: one clear message naming the setting, its value, the valid values and the fix (`--set KEY=VALUE` on
the command line, `overrides` in a notebook).

Types are checked when a config is built (`config._coerce`); this module checks ranges and the relations between
fields, so nothing fails after minutes of training on a value that could have been refused up front.
"""

from __future__ import annotations

import math

from typing import Any

from .config import MEMORY_FORMATS, MDLConfig, RunConfig, SourceConfig
from .data.datasets import DATASETS
from .data.domains import DOMAINS, SOURCE
from .data.packaged import PACKAGED_DOMAINS, PACKAGED_SOURCE
from .mdl.methods import MDL_METHODS
from .mdl.sharing import SHARING
from .models import BACKBONES, HEADS
from .pruning import STRATEGIES, build_strategy
from .tasks import TASKS
from .weighting import WEIGHTINGS, build_weighting


# Upper bounds that catch a typo before it allocates or runs for ever (each is far above any profile's value)
MAX_ITERATIONS = 10_000_000
MAX_BATCH = 65_536
MAX_THREADS = 256
MAX_SIDE = 4096  # pixels of a generated image
MAX_SAMPLES = 1_000_000  # of a generated split
MAX_DATA_GIB = 8.0  # a generated split held in memory (multi-task: image, labels, depth, normals in float32/int64)
BYTES_PER_PIXEL = 4 * 3 + 8 + 4 + 4 * 3  # image, label, depth, normal


def _finite(x: float) -> bool:
    return isinstance(x, (int, float)) and math.isfinite(x)


def validate(cfg: Any) -> None:
    """Raise one ValueError naming the first bad setting of `cfg` (any kind of run)."""
    if isinstance(cfg, MDLConfig):
        return _validate_mdl(cfg)
    if isinstance(cfg, SourceConfig):
        return _validate_source(cfg)
    if not isinstance(cfg, RunConfig):
        raise TypeError(f"no validation for {type(cfg).__name__}")
    return _validate_multitask(cfg)


def _validate_multitask(cfg: RunConfig) -> None:
    BACKBONES.get(cfg.model.backbone)
    HEADS.get(cfg.model.head)
    WEIGHTINGS.get(cfg.weighting.name)
    STRATEGIES.get(cfg.pruning.method)
    dataset = DATASETS.get(cfg.data.dataset)  # unknown: one error naming the registered ones
    outside = [t for t in cfg.tasks if t not in dataset.tasks]
    if outside:
        raise ValueError(f"tasks {outside} are not tasks of dataset {dataset.name!r} ({', '.join(dataset.tasks)}); "
                         f"choose --dataset or tasks accordingly")
    bad_tasks = [t for t in cfg.tasks if t not in TASKS]
    if bad_tasks or not cfg.tasks:
        raise ValueError(f"tasks: unknown or empty {list(cfg.tasks)}; valid: a non-empty subset of "
                         f"{', '.join(TASKS.names())}")
    if len(set(cfg.tasks)) != len(cfg.tasks):
        raise ValueError(f"tasks must not repeat, got {list(cfg.tasks)} (each task has one head)")
    t, m, d = cfg.train, cfg.model, cfg.data
    checks = [
        (1 <= t.iterations <= MAX_ITERATIONS,
         f"train.iterations must be an integer >= 1 (at most {MAX_ITERATIONS:,}), got {t.iterations:,}"),
        (1 <= t.batch_size <= MAX_BATCH,
         f"train.batch_size must be an integer >= 1 (at most {MAX_BATCH:,}), got {t.batch_size:,}"),
        (1 <= t.eval_batch_size <= MAX_BATCH,
         f"train.eval_batch_size must be an integer >= 1 (at most {MAX_BATCH:,}), got {t.eval_batch_size:,}"),
        (_finite(t.lr) and t.lr > 0, f"train.lr must be a finite number > 0, got {t.lr}"),
        (len(t.betas) == 2 and all(_finite(b) and 0 <= b < 1 for b in t.betas),
         f"train.betas must be two numbers in [0, 1) (Adam's beta1, beta2), got {list(t.betas)}"),
        (_finite(t.weight_decay) and t.weight_decay >= 0, f"train.weight_decay must be >= 0, got {t.weight_decay}"),
        (t.lr_schedule in ("step", "cosine", "constant"),
         f"train.lr_schedule {t.lr_schedule!r} unknown; valid: step, cosine, constant"),
        (t.precision in ("float32", "bf16"),
         f"train.precision {t.precision!r} unknown; valid: float32, bf16, auto (bf16 where native)"),
        (t.memory_format in MEMORY_FORMATS,
         f"train.memory_format {t.memory_format!r} unknown; valid: {', '.join(MEMORY_FORMATS)}"),
        (isinstance(t.threads, int) and not isinstance(t.threads, bool) and 0 <= t.threads <= MAX_THREADS,
         f"train.threads must be an integer in [0, {MAX_THREADS}] (0: the process's threads), got {t.threads!r}"),
        (0 < t.lr_step <= 1, f"train.lr_step must be in (0, 1], got {t.lr_step}"),
        (0 < t.lr_gamma <= 1, f"train.lr_gamma must be in (0, 1], got {t.lr_gamma}"),
        (m.width >= 1, f"model.width must be an integer >= 1, got {m.width}"),
        (m.head_width >= 1, f"model.head_width must be an integer >= 1, got {m.head_width}"),
        (len(m.head_rates) >= 1 and all(r >= 1 for r in m.head_rates),
         f"model.head_rates must be a non-empty list of dilation rates >= 1 (e.g. [1, 2, 3, 4]), got "
         f"{list(m.head_rates)}"),
        (m.output_stride in (2, 4, 8, 16), f"model.output_stride must be 2, 4, 8 or 16, got {m.output_stride}"),
        (0 <= m.dropout < 1, f"model.dropout must be in [0, 1), got {m.dropout}"),
        (0 < d.val_fraction < 1, f"data.val_fraction must be in (0, 1) (the validation share carved from train; "
                                 f"model choices never look at test), got {d.val_fraction}"),
        (d.split_seed >= 0, f"data.split_seed must be an integer >= 0, got {d.split_seed}"),
    ]
    if d.synthetic is not None:
        s = d.synthetic
        checks.append((2 <= s.n_train <= MAX_SAMPLES and 1 <= s.n_test <= MAX_SAMPLES and 8 <= s.height <= MAX_SIDE
                       and 8 <= s.width <= MAX_SIDE and 0 <= s.seed < 2 ** 31,
                       f"data.synthetic needs n_train in [2, {MAX_SAMPLES:,}], n_test in [1, {MAX_SAMPLES:,}], height "
                       f"and width in [8, {MAX_SIDE}] and seed in [0, 2^31); got n_train={s.n_train}, "
                       f"n_test={s.n_test}, height={s.height}, width={s.width}, seed={s.seed}"))
        gib = max(s.n_train, s.n_test) * s.height * s.width * BYTES_PER_PIXEL / 2 ** 30
        checks.append((gib <= MAX_DATA_GIB, f"data.synthetic: a split of {max(s.n_train, s.n_test):,} images at "
                                            f"{s.height}x{s.width} needs {gib:.1f} GiB in memory (at most "
                                            f"{MAX_DATA_GIB:g}); lower data.synthetic.height/width/n_train"))
        n_val = int(round(d.val_fraction * s.n_train))
        checks.append((1 <= n_val <= s.n_train - 1,
                       f"data.val_fraction={d.val_fraction} leaves {n_val} validation and {s.n_train - n_val} "
                       f"training scenes of {s.n_train}; both need at least one: choose a fraction between "
                       f"{1 / s.n_train:.3g} and {1 - 1 / s.n_train:.3g}"))
    p = cfg.pruning
    if not STRATEGIES.get(p.method).prunes:
        pruning = ", ".join(m for m in STRATEGIES.names() if STRATEGIES.get(m).prunes)
        checks.append((p.sparsity == 0.0, f"method {p.method!r} prunes nothing and takes no sparsity (got "
                                          f"{p.sparsity}); drop --sparsity or choose a pruning method: {pruning}"))
    else:
        checks.append((0.0 < p.sparsity < 1.0, f"sparsity must be in (0, 1), got {p.sparsity}"))
    if p.method != "dense":
        checks.append((cfg.dense is not None, f"pruning method {p.method!r} needs the dense run it starts from "
                                              f"(`dense`); build the config with profiles.make_config"))
    _check(checks)
    build_weighting(cfg.weighting.name, cfg.tasks, dict(cfg.weighting.params), t.iterations)  # bad params fail here
    build_strategy(p)  # so do bad or unknown method parameters, before anything trains
    if cfg.dense is not None:
        validate(cfg.dense)


def _validate_mdl(cfg: MDLConfig) -> None:
    cls = MDL_METHODS.get(cfg.method.name)
    SHARING.get(cfg.method.sharing)
    m, t = cfg.method, cfg.train
    _check([
        (0 < m.budget <= 1, f"budget must be in (0, 1], got {m.budget}"),
        (m.granularity in ("filter", "slice"), f"granularity {m.granularity!r} unknown; valid: filter, slice"),
        (cls.uses_switches or m.sharing == "none",
         f"method {m.name!r} has no switches, so no sharing term: use sharing 'none' (got {m.sharing!r})"),
        (m.sharing_weight >= 0 and m.dual_lr >= 0 and m.budget_weight >= 0,
         "sharing_weight, budget_weight and dual_lr must be >= 0"),
        (1 <= t.iterations <= MAX_ITERATIONS and 1 <= t.batch_size <= MAX_BATCH,
         f"train.iterations must be in [1, {MAX_ITERATIONS:,}] and train.batch_size in [1, {MAX_BATCH}], got "
         f"{t.iterations:,} and {t.batch_size}"),
        (_finite(t.lr) and t.lr > 0 and _finite(t.switch_lr) and t.switch_lr > 0,
         "train.lr and train.switch_lr must be finite numbers > 0"),
        (isinstance(t.threads, int) and 0 <= t.threads <= MAX_THREADS,
         f"train.threads must be an integer in [0, {MAX_THREADS}] (0: the process's), got {t.threads}"),
        (t.memory_format in MEMORY_FORMATS,
         f"train.memory_format {t.memory_format!r} unknown; valid: {', '.join(MEMORY_FORMATS)}"),
    ])
    _validate_source(cfg.source)


def _validate_source(cfg: SourceConfig) -> None:
    d = cfg.data
    spec = d.synthetic
    _check([
        (1 <= cfg.iterations <= MAX_ITERATIONS and 1 <= cfg.batch_size <= MAX_BATCH,
         f"source.iterations must be in [1, {MAX_ITERATIONS:,}] and source.batch_size in [1, {MAX_BATCH}]"),
        (_finite(cfg.lr) and cfg.lr > 0, f"source.lr must be a finite number > 0, got {cfg.lr}"),
        (isinstance(cfg.threads, int) and 0 <= cfg.threads <= MAX_THREADS,
         f"source.threads must be an integer in [0, {MAX_THREADS}] (0: the process's), got {cfg.threads}"),
        (cfg.memory_format in MEMORY_FORMATS,
         f"source.memory_format {cfg.memory_format!r} unknown; valid: {', '.join(MEMORY_FORMATS)}"),
        (8 <= d.size <= MAX_SIDE, f"source.data.size must be in [8, {MAX_SIDE}], got {d.size}"),
        (spec is None or (8 <= spec.size <= MAX_SIDE and all(0 <= n <= MAX_SAMPLES for n in
                                                              (spec.n_train, spec.n_val, spec.n_test, spec.n_source))
                          and min(spec.n_train, spec.n_val, spec.n_test) >= 1 and 0 <= spec.seed < 2 ** 31),
         f"source.data.synthetic needs size in [8, {MAX_SIDE}], n_train/n_val/n_test in [1, {MAX_SAMPLES:,}] and "
         f"seed in [0, 2^31)"),
        (len(d.domains) >= 2, "a multi-domain run needs at least two domains"),
        (d.synthetic is None or d.packaged is None,
         "source.data.synthetic and source.data.packaged are two benchmarks: set one of them to None"),
        (d.synthetic is None or not set(d.domains) - set(DOMAINS),
         f"source.data.domains {list(d.domains)}: unknown domain(s) {sorted(set(d.domains) - set(DOMAINS))} for the "
         f"generated benchmark; valid: {', '.join(DOMAINS)}"),
        (d.packaged is None or (not set(d.domains) - set(d.packaged.domains)
                                and not set(d.packaged.domains) - set(PACKAGED_DOMAINS)),
         f"source.data.domains {list(d.domains)} must be among the packaged benchmark's domains "
         f"({', '.join(d.packaged.domains) if d.packaged else ''}; valid: {', '.join(PACKAGED_DOMAINS)})"),
        (d.packaged is None or (8 <= d.packaged.size <= MAX_SIDE and 0 <= d.packaged.seed < 2 ** 31 and all(
            1 <= n <= MAX_SAMPLES for n in (d.packaged.max_train, d.packaged.max_val, d.packaged.max_test,
                                            d.packaged.n_source))),
         f"source.data.packaged needs size in [8, {MAX_SIDE}], caps in [1, {MAX_SAMPLES:,}] and seed in [0, 2^31)"),
        (len(set(d.domains)) == len(d.domains), f"source.data.domains must not repeat, got {list(d.domains)}"),
        (d.synthetic is None or d.source == SOURCE,
         f"source.data.source {d.source!r}: the generated benchmark pretrains on {SOURCE!r} only"),
        (d.packaged is None or d.source == PACKAGED_SOURCE,
         f"source.data.source {d.source!r}: the packaged benchmark pretrains on {PACKAGED_SOURCE!r} only"),
        (d.source in d.domains, f"source {d.source!r} must be one of the domains {d.domains}"),
    ])


def _check(checks: list[tuple[bool, str]]) -> None:
    for ok, message in checks:
        if not ok:
            raise ValueError(message)
