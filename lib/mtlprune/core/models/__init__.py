"""Architecture axis: backbone and head registries, and the multi-task network assembled from them."""

from .backbones import BACKBONES
from .heads import HEADS
from .multitask import MultiTaskNet, PrunableLayer, build_model, prunable_layers

__all__ = ["BACKBONES", "HEADS", "MultiTaskNet", "PrunableLayer", "build_model", "prunable_layers"]
