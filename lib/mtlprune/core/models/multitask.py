"""The multi-task network: a shared `backbone` and one head per task, with the prunable weights named by component.

Components are `backbone` and the task names (the task axis, `tasks`: NYU-v2's `seg`, `depth`, `normal`). Prunable
weights are the weights of every Conv2d/Linear module; biases and BatchNorm stay dense (as in AdapMTL, DiSparse, STR).
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import Callable

import torch
from torch import nn

from ..config import ModelConfig
from ..tasks import task_spec
from .backbones import BACKBONES
from .heads import HEADS, fusable, fused_aspp

class MultiTaskNet(nn.Module):
    def __init__(self, backbone: nn.Module, heads: dict[str, nn.Module],
                 activations: dict[str, Callable[[torch.Tensor], torch.Tensor]] | None = None) -> None:
        super().__init__()
        self.backbone = backbone
        self.heads = nn.ModuleDict(heads)
        self.activations = dict(activations or {})  # task -> applied to its upsampled output (its spec's)

    @property
    def tasks(self) -> list[str]:
        return list(self.heads.keys())

    def components(self) -> dict[str, nn.Module]:
        return {"backbone": self.backbone, **dict(self.heads.items())}

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        feats = self.backbone(x)
        heads = list(self.heads.values())
        outs = fused_aspp(heads, feats) if fusable(heads) else [h(feats) for h in heads]
        # Predictions are upsampled to the input size and the losses taken there (LibMTL convention), all heads'
        # channels at once
        ys = upsample_bilinear(torch.cat(outs, 1), tuple(x.shape[-2:]))
        out = {}
        for task, y in zip(self.heads, ys.split([o.shape[1] for o in outs], dim=1)):
            act = self.activations.get(task)
            out[task] = act(y) if act is not None else y
        return out


@functools.lru_cache(maxsize=32)
def _interpolation_matrix(n_in: int, n_out: int) -> torch.Tensor:
    """The (n_out, n_in) matrix of 1-D linear interpolation exactly as `F.interpolate(mode="bilinear",
    align_corners=False)` computes it on CPU (source index scale·(o + ½) − ½, clamped at 0; the last pixel repeats)."""
    scale = n_in / n_out
    a = torch.zeros(n_out, n_in, dtype=torch.float64)
    for o in range(n_out):
        src = max(scale * (o + 0.5) - 0.5, 0.0)
        i0 = int(src)
        i1 = i0 + (1 if i0 < n_in - 1 else 0)
        a[o, i0] += 1.0 - (src - i0)
        a[o, i1] += src - i0
    return a.float()


def upsample_bilinear(x: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """Bilinear upsampling (align_corners=False) as two small matrix products, A_h · x · A_wᵀ: the same function as
    `F.interpolate` up to float rounding, and an order of magnitude faster backward on CPU (whose upsample backward
    scatters pixel by pixel)."""
    a_h = _interpolation_matrix(x.shape[-2], size[0]).to(x.device, x.dtype)
    a_w = _interpolation_matrix(x.shape[-1], size[1]).to(x.device, x.dtype)
    return a_h @ x @ a_w.T


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
    specs = {t: task_spec(t) for t in tasks}
    heads = {t: head_fn(backbone.out_channels, specs[t].channels, width=cfg.head_width, rates=cfg.head_rates,
                        dropout=cfg.dropout) for t in tasks}
    return MultiTaskNet(backbone, heads, {t: s.activation for t, s in specs.items() if s.activation is not None})
