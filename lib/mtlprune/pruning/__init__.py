"""Pruning-strategy axis: every method is a `PruningStrategy` registered under its CLI key in `STRATEGIES`."""

from .base import STRATEGIES, PruningStrategy, TrainContext, build_strategy

__all__ = ["STRATEGIES", "PruningStrategy", "TrainContext", "build_strategy"]
