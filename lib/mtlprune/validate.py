"""Validation of a whole `RunConfig` before anything runs: one clear message naming the bad value and the valid ones."""

from __future__ import annotations

from .config import TASKS, RunConfig
from .models import BACKBONES, HEADS
from .pruning import STRATEGIES
from .weighting import WEIGHTINGS, build_weighting


def validate(cfg: RunConfig) -> None:
    BACKBONES.get(cfg.model.backbone)
    HEADS.get(cfg.model.head)
    WEIGHTINGS.get(cfg.weighting.name)
    STRATEGIES.get(cfg.pruning.method)
    bad_tasks = [t for t in cfg.tasks if t not in TASKS]
    if bad_tasks or not cfg.tasks:
        raise ValueError(f"unknown task(s) {bad_tasks}; valid: {', '.join(TASKS)}")
    t = cfg.train
    checks = [
        (t.iterations >= 1, f"train.iterations must be >= 1, got {t.iterations}"),
        (t.batch_size >= 1, f"train.batch_size must be >= 1, got {t.batch_size}"),
        (t.lr > 0, f"train.lr must be > 0, got {t.lr}"),
        (t.weight_decay >= 0, f"train.weight_decay must be >= 0, got {t.weight_decay}"),
        (t.lr_schedule in ("step", "cosine", "constant"),
         f"train.lr_schedule {t.lr_schedule!r} unknown; valid: step, cosine, constant"),
        (0 < t.lr_step <= 1, f"train.lr_step must be in (0, 1], got {t.lr_step}"),
        (0 < t.lr_gamma <= 1, f"train.lr_gamma must be in (0, 1], got {t.lr_gamma}"),
        (cfg.model.width >= 1 and cfg.model.head_width >= 1, "model.width and model.head_width must be >= 1"),
        (0 <= cfg.model.dropout < 1, f"model.dropout must be in [0, 1), got {cfg.model.dropout}"),
        (0 <= cfg.data.val_fraction < 1, f"data.val_fraction must be in [0, 1), got {cfg.data.val_fraction}"),
    ]
    if cfg.data.synthetic is not None:
        s = cfg.data.synthetic
        checks.append((s.n_train >= 2 and s.n_test >= 1 and s.height >= 8 and s.width >= 8,
                       "data.synthetic needs n_train >= 2, n_test >= 1 and height, width >= 8"))
    p = cfg.pruning
    if p.method == "dense":
        checks.append((p.sparsity == 0.0, f"the dense method takes no sparsity (got {p.sparsity}); "
                                          f"choose a pruning method: {', '.join(m for m in STRATEGIES.names() if m != 'dense')}"))
    else:
        checks.append((0.0 < p.sparsity < 1.0, f"sparsity must be in (0, 1), got {p.sparsity}"))
    for ok, message in checks:
        if not ok:
            raise ValueError(message)
    build_weighting(cfg.weighting.name, cfg.tasks, dict(cfg.weighting.params), t.iterations)  # bad params fail here
    STRATEGIES.get(p.method)(p)  # so do bad method parameters, before anything trains
