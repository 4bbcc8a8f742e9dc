"""Backbones: a CPU-size ResNet (quick profile), DeepLab-ResNet34 (dilated, output stride 8) and MobileNetV2 (OS 32).

The two paper backbones follow the AdaShare/DiSparse/AdapMTL definitions (adapmtl.md §2.3): ResNet34 BasicBlocks
[3, 4, 6, 3] with strides [1, 2, 1, 1] and dilations [1, 1, 2, 4] after a 7x7/2 stem and max-pool, 512 output channels;
MobileNetV2 width 1.0 with the classifier removed, 1280 output channels. Written here (no torchvision on CPU wheels).
Each backbone exposes `out_channels` and `output_stride`.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from ..registry import Registry
from .convolution import StridedPointwiseConv

BACKBONES: Registry = Registry("backbone")


class BasicBlock(nn.Module):
    def __init__(self, cin: int, cout: int, stride: int = 1, dilation: int = 1) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(cin, cout, 3, stride, padding=dilation, dilation=dilation, bias=False)
        self.bn1 = nn.BatchNorm2d(cout)
        self.conv2 = nn.Conv2d(cout, cout, 3, 1, padding=dilation, dilation=dilation, bias=False)
        self.bn2 = nn.BatchNorm2d(cout)
        self.relu = nn.ReLU(inplace=True)
        self.downsample = None
        if stride != 1 or cin != cout:
            self.downsample = nn.Sequential(StridedPointwiseConv(cin, cout, 1, stride, bias=False),
                                            nn.BatchNorm2d(cout))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        identity = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.bn1(self.conv1(x)))
        return self.relu(self.bn2(self.conv2(out)) + identity)


class ResNet(nn.Module):
    """Generic BasicBlock ResNet; the stem and per-stage stride/dilation decide the output stride."""

    def __init__(self, widths, blocks, strides, dilations, stem: str) -> None:
        super().__init__()
        w0 = widths[0]
        if stem == "imagenet":  # 7x7/2 + max-pool: stride 4 before the first stage
            self.stem = nn.Sequential(nn.Conv2d(3, w0, 7, 2, 3, bias=False), nn.BatchNorm2d(w0), nn.ReLU(inplace=True),
                                      nn.MaxPool2d(3, 2, 1))
            stem_stride = 4
        else:  # 3x3/2: cheap stem for small inputs
            self.stem = nn.Sequential(nn.Conv2d(3, w0, 3, 2, 1, bias=False), nn.BatchNorm2d(w0), nn.ReLU(inplace=True))
            stem_stride = 2
        layers, cin = [], w0
        for w, n, s, d in zip(widths, blocks, strides, dilations):
            stage = [BasicBlock(cin, w, s, d)] + [BasicBlock(w, w, 1, d) for _ in range(n - 1)]
            layers.append(nn.Sequential(*stage))
            cin = w
        self.layers = nn.Sequential(*layers)
        self.out_channels = cin
        self.output_stride = stem_stride * math.prod(strides)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.layers(self.stem(x))


@BACKBONES.register("resnet_small")
def resnet_small(width: int = 16, output_stride: int = 4, blocks=(1, 1, 1, 1), **_) -> ResNet:
    """CPU-size ResNet: widths w, 2w, 4w, 8w; strides after the 3x3/2 stem reach `output_stride`, then dilation."""
    if output_stride not in (2, 4, 8, 16):
        raise ValueError(f"resnet_small output_stride must be 2, 4, 8 or 16, got {output_stride}")
    strides, dilations, stride, dil = [], [], 2, 1
    for i in range(4):
        s = 2 if (i > 0 and stride < output_stride) else 1
        if i > 0 and s == 1:
            dil *= 2 if i > 1 or output_stride == 2 else 1
        stride *= s
        strides.append(s)
        dilations.append(dil)
    return ResNet([width, 2 * width, 4 * width, 8 * width], list(blocks), strides, dilations, stem="small")


@BACKBONES.register("deeplab_resnet34")
def deeplab_resnet34(**_) -> ResNet:
    """DeepLab-ResNet34 as in AdaShare/DiSparse/AdapMTL: OS 8, dilations 1/1/2/4, 512 channels."""
    return ResNet([64, 128, 256, 512], [3, 4, 6, 3], [1, 2, 1, 1], [1, 1, 2, 4], stem="imagenet")


class InvertedResidual(nn.Module):
    def __init__(self, cin: int, cout: int, stride: int, expand: int) -> None:
        super().__init__()
        hidden = cin * expand
        layers: list[nn.Module] = []
        if expand != 1:
            layers += [nn.Conv2d(cin, hidden, 1, bias=False), nn.BatchNorm2d(hidden), nn.ReLU6(inplace=True)]
        layers += [nn.Conv2d(hidden, hidden, 3, stride, 1, groups=hidden, bias=False), nn.BatchNorm2d(hidden),
                   nn.ReLU6(inplace=True), nn.Conv2d(hidden, cout, 1, bias=False), nn.BatchNorm2d(cout)]
        self.conv = nn.Sequential(*layers)
        self.residual = stride == 1 and cin == cout

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.conv(x) if self.residual else self.conv(x)


class MobileNetV2(nn.Module):
    # (expansion, channels, repeats, stride) from Sandler et al. 2018, width multiplier 1.0
    SETTINGS = ((1, 16, 1, 1), (6, 24, 2, 2), (6, 32, 3, 2), (6, 64, 4, 2), (6, 96, 3, 1), (6, 160, 3, 2),
                (6, 320, 1, 1))

    def __init__(self) -> None:
        super().__init__()
        layers: list[nn.Module] = [nn.Conv2d(3, 32, 3, 2, 1, bias=False), nn.BatchNorm2d(32), nn.ReLU6(inplace=True)]
        cin = 32
        for t, c, n, s in self.SETTINGS:
            for i in range(n):
                layers.append(InvertedResidual(cin, c, s if i == 0 else 1, t))
                cin = c
        layers += [nn.Conv2d(cin, 1280, 1, bias=False), nn.BatchNorm2d(1280), nn.ReLU6(inplace=True)]
        self.features = nn.Sequential(*layers)
        self.out_channels = 1280
        self.output_stride = 32

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.features(x)


@BACKBONES.register("mobilenetv2")
def mobilenetv2(**_) -> MobileNetV2:
    return MobileNetV2()
