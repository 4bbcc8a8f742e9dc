"""Task heads. `aspp` is the AdaShare/DiSparse/AdapMTL head: parallel dilated branches whose outputs are summed.

Each branch: 3x3 dilated conv (C_in -> width) -> ReLU -> Dropout -> 1x1 (width -> width) -> ReLU -> Dropout ->
1x1 (width -> n_out). The papers use width 1024, rates 6/12/18/24 and dropout 0.5; profiles scale them down for CPU.
"""

from __future__ import annotations

import torch
from torch import nn

from ..registry import Registry

HEADS: Registry = Registry("head")


class ASPPHead(nn.Module):
    def __init__(self, cin: int, n_out: int, width: int, rates: tuple[int, ...], dropout: float) -> None:
        super().__init__()
        self.branches = nn.ModuleList(
            nn.Sequential(
                nn.Conv2d(cin, width, 3, padding=r, dilation=r), nn.ReLU(inplace=True), nn.Dropout(dropout),
                nn.Conv2d(width, width, 1), nn.ReLU(inplace=True), nn.Dropout(dropout),
                nn.Conv2d(width, n_out, 1),
            )
            for r in rates
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return sum(branch(x) for branch in self.branches)


@HEADS.register("aspp")
def aspp(cin: int, n_out: int, width: int = 64, rates: tuple[int, ...] = (1, 2, 3, 4), dropout: float = 0.0,
         **_) -> ASPPHead:
    return ASPPHead(cin, n_out, width, tuple(rates), dropout)
