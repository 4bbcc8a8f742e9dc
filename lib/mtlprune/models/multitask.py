"""The multi-task network: a shared `backbone` and one head per task, with the prunable weights named by component.

Components are `backbone` and the task names (`seg`, `depth`, `normal`). Prunable weights are the weights of every
Conv2d/Linear module; biases and BatchNorm stay dense (as in AdapMTL, DiSparse and STR).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from ..config import ModelConfig
from .backbones import BACKBONES
from .heads import HEADS

TASK_CHANNELS = {"seg": 13, "depth": 1, "normal": 3}


class MultiTaskNet(nn.Module):
    def __init__(self, backbone: nn.Module, heads: dict[str, nn.Module]) -> None:
        super().__init__()
        self.backbone = backbone
        self.heads = nn.ModuleDict(heads)

    @property
    def tasks(self) -> list[str]:
        return list(self.heads.keys())

    def components(self) -> dict[str, nn.Module]:
        return {"backbone": self.backbone, **dict(self.heads.items())}

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        feats = self.backbone(x)
        out = {}
        for task, head in self.heads.items():
            # Predictions are upsampled to the input size and the losses taken there (LibMTL convention).
            y = F.interpolate(head(feats), size=x.shape[-2:], mode="bilinear", align_corners=False)
            out[task] = F.normalize(y, dim=1) if task == "normal" else y
        return out


@dataclass(frozen=True)
class PrunableLayer:
    component: str
    name: str  # qualified module name inside the whole model
    module: nn.Module


def prunable_layers(model: MultiTaskNet) -> list[PrunableLayer]:
    """Every Conv2d/Linear of the model, with the component it belongs to, in a stable order."""
    layers = []
    for component, sub in model.components().items():
        prefix = "backbone" if component == "backbone" else f"heads.{component}"
        for name, module in sub.named_modules():
            if isinstance(module, (nn.Conv2d, nn.Linear)):
                layers.append(PrunableLayer(component, f"{prefix}.{name}", module))
    return layers


def build_model(cfg: ModelConfig, tasks: tuple[str, ...]) -> MultiTaskNet:
    backbone = BACKBONES.get(cfg.backbone)(width=cfg.width, output_stride=cfg.output_stride)
    head_fn = HEADS.get(cfg.head)
    heads = {t: head_fn(backbone.out_channels, TASK_CHANNELS[t], width=cfg.head_width, rates=cfg.head_rates,
                        dropout=cfg.dropout) for t in tasks}
    return MultiTaskNet(backbone, heads)
