"""A 1×1 strided convolution that keeps its weight gradient correct on CPU, around a defect of oneDNN.

oneDNN 3.12 (in torch 2.13's CPU wheel) computes the weight gradient of a 1×1 convolution with stride > 1 wrongly when
its input is channels-last and has fewer input channels than the kernel's channel block (8 with AVX2, 16 with
AVX-512): its reduce-to-unit-stride copy writes past its workspace (uxlfoundation/oneDNN#6035). Measured on this
project's AVX2 machine against float64: weight gradients wrong by 30–160 % for 1–7 input channels, heap corruption
with one thread, hangs at some sizes; on AVX-512 it showed as ~1e-7 run-to-run differences. The smoke model's
ResNet downsampling convolutions (4 and 8 input channels) are such layers.

`StridedPointwiseConv` is an `nn.Conv2d` (same parameters, state-dict keys, FLOPs and pruning reparametrizations) that,
for fewer than 16 input channels on CPU, takes the stride itself — `x[:, :, ::s, ::s]` then a stride-1 1×1
convolution, the same arithmetic — so oneDNN never makes the faulty copy. Layers with ≥ 16 input channels, and CUDA,
run the ordinary kernel, so the quick and full models compute bit for bit what they did before.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

ONEDNN_WIDEST_IC_BLOCK = 16  # AVX-512's block; AVX2's is 8. Below it the faulty path may be taken on some CPU.


def takes_faulty_path(x: torch.Tensor, weight: torch.Tensor, stride: tuple[int, int]) -> bool:
    """Whether oneDNN's defective 1×1 strided backward-weights kernel would compute this convolution's gradient."""
    # The layout is not tested: torch takes oneDNN's channels-last path when the input *or* the weight is
    # channels-last, so every 1×1 strided convolution with few input channels on CPU is routed.
    return x.device.type == "cpu" and tuple(weight.shape[-2:]) == (1, 1) and max(stride) > 1 and \
        x.shape[1] < ONEDNN_WIDEST_IC_BLOCK


def routes_around_onednn(model: nn.Module) -> bool:
    """Whether any layer of `model` takes the subsampled path on CPU (run identity salts such models' ids)."""
    return any(isinstance(m, StridedPointwiseConv) and m.stride != (1, 1) and m.padding == (0, 0)
               and m.in_channels < ONEDNN_WIDEST_IC_BLOCK for m in model.modules())


class StridedPointwiseConv(nn.Conv2d):
    """`nn.Conv2d(cin, cout, 1, stride)` computed as subsample-then-1×1 where oneDNN's own strided path is faulty."""

    def _conv_forward(self, input: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None) -> torch.Tensor:
        if self.padding == (0, 0) and takes_faulty_path(input, weight, self.stride):
            sh, sw = self.stride
            return F.conv2d(input[:, :, ::sh, ::sw], weight, bias, 1, 0, self.dilation, self.groups)
        return super()._conv_forward(input, weight, bias)
