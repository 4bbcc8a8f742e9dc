"""Task heads. `aspp` is the AdaShare/DiSparse/AdapMTL head: parallel dilated branches whose outputs are summed.

Each branch: 3x3 dilated conv (C_in -> width) -> ReLU -> Dropout -> 1x1 (width -> width) -> ReLU -> Dropout ->
1x1 (width -> n_out). The papers use width 1024, rates 6/12/18/24 and dropout 0.5; profiles scale them down for CPU.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from ..registry import Registry

HEADS: Registry = Registry("head")


class ASPPHead(nn.Module):
    def __init__(self, cin: int, n_out: int, width: int, rates: tuple[int, ...], dropout: float) -> None:
        super().__init__()
        self.rates, self.width, self.n_out, self.dropout = tuple(rates), width, n_out, dropout
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


def fusable(heads: list[nn.Module]) -> bool:
    """Whether `fused_aspp` can run these heads as one: ASPP heads of one shape (rates, width, dropout)."""
    return len(heads) > 1 and all(isinstance(h, ASPPHead) for h in heads) and \
        len({(h.rates, h.width, h.dropout) for h in heads}) == 1


def fused_aspp(heads: list[ASPPHead], x: torch.Tensor) -> list[torch.Tensor]:
    """Every head's output at once, with the same weights (each read once through its parametrization, so masks and
    soft thresholds apply as in the modules' own forward): per rate, the heads' dilated 3x3 convolutions run as one
    convolution over the concatenated filters and their 1x1 convolutions as one grouped convolution; the last 1x1 of
    every branch of every head and the sum over branches are one convolution with a block-diagonal weight. Speed only
    (9 convolutions instead of 36 for 3 heads of 4 branches, at the heads' small feature maps); the same function up
    to float rounding. Dropout draws one mask over the concatenated channels (the same distribution)."""
    first = heads[0]
    n_heads, p = len(heads), first.dropout
    hidden = []
    for i, rate in enumerate(first.rates):
        dilated = [h.branches[i][0] for h in heads]
        z = F.conv2d(x, torch.cat([c.weight for c in dilated]), torch.cat([c.bias for c in dilated]),
                     padding=rate, dilation=rate)
        z = F.dropout(F.relu(z), p, heads[0].training) if p else F.relu(z)
        pointwise = [h.branches[i][3] for h in heads]
        z = F.conv2d(z, torch.cat([c.weight for c in pointwise]), torch.cat([c.bias for c in pointwise]),
                     groups=n_heads)
        hidden.append(F.dropout(F.relu(z), p, heads[0].training) if p else F.relu(z))
    # the last 1x1 of every (rate, head) and the sum over rates: one weight, block-diagonal over heads per rate
    weight = torch.cat([torch.block_diag(*[h.branches[i][6].weight.flatten(1) for h in heads])
                        for i in range(len(first.rates))], dim=1)
    bias = torch.cat([sum(b.branches[i][6].bias for i in range(len(first.rates))) for b in heads])
    out = F.conv2d(torch.cat(hidden, 1), weight[:, :, None, None], bias)
    return list(out.split([h.n_out for h in heads], dim=1))


@HEADS.register("aspp")
def aspp(cin: int, n_out: int, width: int = 64, rates: tuple[int, ...] = (1, 2, 3, 4), dropout: float = 0.0,
         **_) -> ASPPHead:
    return ASPPHead(cin, n_out, width, tuple(rates), dropout)
