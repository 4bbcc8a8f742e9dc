"""The multi-domain network: a shared ResNet whose BatchNorms and classifiers are per domain, with per-domain binary
switches on the filters of each residual block's inner convolution, and the physical removal of unused filters.

Switches (BA², Berriel et al. ICCV 2019; Budget-Aware Pruning, dos Santos et al.) are latent reals ŝ binarised as
s = 1[ŝ > 0] in the forward pass with a straight-through estimator (identity gradient). Granularity `filter`: one switch
per (domain, filter); `slice`: one per (domain, filter, input channel), BA²'s elementary-convolution gating, a filter
being used by a domain when any of its slices is. Only the *inner* convolution of each basic block is switched: its
output channels feed nothing but the block's second convolution, so a filter no domain uses can be removed with its
BatchNorm channels and the matching input slice of the second convolution, and the residual stream is untouched
(the simplest exact treatment of skip connections; stem, shortcuts and second convolutions stay dense). The gate
multiplies the inner BatchNorm's *output*, so a switched-off filter contributes exactly zero and removal is exact.

Sizes: `widths` and `blocks` (per stage); the full profile's (64, 128, 256) × 4 is Rebuffi et al.'s ResNet-26 (the
Decathlon's), the quick profile's (12, 24, 48) × 1 a CPU-size ResNet.
"""

from __future__ import annotations

import copy

import torch
import torch.nn.functional as F
from torch import nn


def ste_binary(latent: torch.Tensor) -> torch.Tensor:
    """1[latent > 0] forward, identity gradient backward."""
    hard = (latent > 0).to(latent.dtype)
    return hard + latent - latent.detach()


class DomainBN(nn.Module):
    """One BatchNorm2d per domain; `forward(x, d)` uses domain d's statistics and affine parameters."""

    def __init__(self, channels: int, domains: int) -> None:
        super().__init__()
        self.bns = nn.ModuleList(nn.BatchNorm2d(channels) for _ in range(domains))

    def forward(self, x: torch.Tensor, d: int) -> torch.Tensor:
        return self.bns[d](x)


class SwitchedBlock(nn.Module):
    def __init__(self, cin: int, cout: int, stride: int, domains: int, granularity: str | None,
                 switch_init: float = 0.5) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(cin, cout, 3, stride, 1, bias=False)
        self.bn1 = DomainBN(cout, domains)
        self.conv2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=False)
        self.bn2 = DomainBN(cout, domains)
        self.shortcut = None
        if stride != 1 or cin != cout:
            self.shortcut = nn.Conv2d(cin, cout, 1, stride, bias=False)
            self.bn_short = DomainBN(cout, domains)
        self.granularity = granularity
        self.switches = None
        if granularity == "filter":
            self.switches = nn.Parameter(torch.full((domains, cout), float(switch_init)))
        elif granularity == "slice":
            self.switches = nn.Parameter(torch.full((domains, cout, cin), float(switch_init)))
        elif granularity is not None:
            raise ValueError(f"unknown switch granularity {granularity!r}; valid: filter, slice")

    def filter_usage(self) -> torch.Tensor:
        """(domains, filters) in {0, 1} forward (STE gradient): is filter f used by domain d."""
        s = ste_binary(self.switches)
        if self.granularity == "slice":
            return 1 - torch.prod(1 - s, dim=2)  # used when any input slice is on
        return s

    def forward(self, x: torch.Tensor, d: int) -> torch.Tensor:
        w = self.conv1.weight
        if self.granularity == "slice":
            w = w * ste_binary(self.switches[d])[:, :, None, None]
        h = self.bn1(F.conv2d(x, w, None, self.conv1.stride, self.conv1.padding), d)
        if self.switches is not None:
            h = h * self.filter_usage()[d][None, :, None, None]
        h = self.bn2(self.conv2(F.relu(h)), d)
        short = x if self.shortcut is None else self.bn_short(self.shortcut(x), d)
        return F.relu(h + short)


class MultiDomainResNet(nn.Module):
    def __init__(self, classes: list[int], widths: tuple[int, ...] = (64, 128, 256), blocks: int = 4,
                 granularity: str | None = None, switch_init: float = 0.5) -> None:
        super().__init__()
        domains = len(classes)
        self.stem = nn.Conv2d(3, widths[0], 3, 1, 1, bias=False)
        self.bn_stem = DomainBN(widths[0], domains)
        layers, cin = [], widths[0]
        for i, w in enumerate(widths):
            for j in range(blocks):
                layers.append(SwitchedBlock(cin, w, 2 if (i > 0 and j == 0) else 1, domains, granularity,
                                            switch_init))
                cin = w
        self.blocks = nn.ModuleList(layers)
        self.heads = nn.ModuleList(nn.Linear(cin, k) for k in classes)
        self.granularity = granularity

    @property
    def domains(self) -> int:
        return len(self.heads)

    def features(self, x: torch.Tensor, d: int) -> torch.Tensor:
        h = F.relu(self.bn_stem(self.stem(x), d))
        for block in self.blocks:
            h = block(h, d)
        return F.adaptive_avg_pool2d(h, 1).flatten(1)

    def forward(self, x: torch.Tensor, d: int) -> torch.Tensor:
        return self.heads[d](self.features(x, d))

    def switched(self) -> list[SwitchedBlock]:
        return [b for b in self.blocks if b.switches is not None]

    def switch_parameters(self) -> list[nn.Parameter]:
        return [b.switches for b in self.switched()]

    def per_filter_params(self) -> list[int]:
        """Weights a filter of each switched block controls: its conv1 filter and its conv2 input slice."""
        return [b.conv1.weight[0].numel() + b.conv2.weight[:, 0].numel() for b in self.switched()]


def normalise_input(x: torch.Tensor, memory_format: str = "contiguous") -> torch.Tensor:
    """uint8 N×3×H×W -> float in about [-1, 1], in `memory_format` ("contiguous" or "channels_last": the layout the
    convolutions then keep)."""
    out = x.float().div(127.5).sub(1.0)
    return out.contiguous(memory_format=torch.channels_last) if memory_format == "channels_last" else out


@torch.no_grad()
def usage_masks(model: MultiDomainResNet) -> list[torch.Tensor]:
    """Per switched block, the (domains, filters) 0/1 usage."""
    return [b.filter_usage().detach() for b in model.switched()]


@torch.no_grad()
def remove_unused(model: MultiDomainResNet, domains: list[int] | None = None) -> MultiDomainResNet:
    """A physically smaller copy: every inner filter no domain (of `domains`, default all) uses is deleted with its
    BatchNorm channels (all domains) and the second convolution's input slice. The remaining switches stay, so each
    domain still sees exactly its own filters: the outputs equal the switched network's on every domain.
    A block whose filters are all unused keeps one (still switched off) so that every layer has a channel."""
    out = copy.deepcopy(model)
    for block in out.switched():
        usage = block.filter_usage().detach()
        used = usage[domains] if domains is not None else usage
        keep = torch.nonzero(used.amax(0) > 0).flatten()
        if keep.numel() == 0:
            keep = torch.tensor([0])
        _shrink_block(block, keep)
    return out


def _shrink_block(block: SwitchedBlock, keep: torch.Tensor) -> None:
    conv1, conv2 = block.conv1, block.conv2
    block.conv1 = nn.Conv2d(conv1.in_channels, keep.numel(), 3, conv1.stride, 1, bias=False)
    block.conv1.weight = nn.Parameter(conv1.weight.detach()[keep].clone())
    block.conv2 = nn.Conv2d(keep.numel(), conv2.out_channels, 3, 1, 1, bias=False)
    block.conv2.weight = nn.Parameter(conv2.weight.detach()[:, keep].clone())
    block.bn1.bns = nn.ModuleList(_slice_bn(bn, keep) for bn in block.bn1.bns)
    block.switches = nn.Parameter(block.switches.detach()[:, keep].clone())


def _slice_bn(bn: nn.BatchNorm2d, keep: torch.Tensor) -> nn.BatchNorm2d:
    new = nn.BatchNorm2d(keep.numel())
    new.load_state_dict({k: (v[keep] if v.ndim else v) for k, v in bn.state_dict().items()})
    return new.train(bn.training)


def count_parameters(model: nn.Module) -> int:
    return sum(p.numel() for n, p in model.named_parameters() if "switches" not in n)
