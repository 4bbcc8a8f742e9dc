"""Pruning-strategy axis: every method is a `PruningStrategy` registered under its CLI key in `STRATEGIES`.

Importing this package registers them all: dense (`base`), random / magnitude_global / magnitude_layer / lth
(`oneshot`), gradual_magnitude / imp (`iterative`), snip (`snip`), str (`soft_threshold`), disparse_static /
disparse_pt / disparse_dynamic (`disparse`),
adapmtl / adapmtl_global_threshold / adapmtl_layer_thresholds (`adapmtl`).
"""

from . import adapmtl, disparse, iterative, oneshot, snip, soft_threshold  # noqa: F401 - registration side effects
from .base import STRATEGIES, PruningStrategy, TrainContext, build_strategy

__all__ = ["STRATEGIES", "PruningStrategy", "TrainContext", "build_strategy"]
