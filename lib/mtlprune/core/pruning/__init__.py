"""Pruning-strategy axis: every method is a `PruningStrategy` registered under its CLI key in `STRATEGIES`.

Importing this package imports every module the catalogue (`mtlprune.catalogue.MULTI_TASK`) names, which registers
the methods; the registry and the catalogue must list the same keys (checked here, at import).
"""

import importlib

from .. import catalogue
from .base import STRATEGIES, PruningStrategy, TrainContext, build_strategy

for _module in catalogue.modules():
    importlib.import_module(f"{__name__}.{_module}")  # registration side effects

_missing = set(catalogue.keys()) - set(STRATEGIES.names())
_unlisted = set(STRATEGIES.names()) - set(catalogue.keys())
if _missing or _unlisted:
    raise ImportError(f"the method catalogue and the pruning registry disagree: catalogued but not registered "
                      f"{sorted(_missing)}, registered but not catalogued {sorted(_unlisted)} (mtlprune/core/catalogue.py)")

__all__ = ["STRATEGIES", "PruningStrategy", "TrainContext", "build_strategy"]
