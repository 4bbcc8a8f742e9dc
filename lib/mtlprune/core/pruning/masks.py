"""Masks as a reparameterization: every prunable weight becomes `original * mask` (torch.nn.utils.parametrize).

Because the forward pass multiplies by the 0/1 mask buffer, a pruned weight is exactly zero in every later forward
pass whatever the optimizer does to its stored original (Adam's moments and coupled weight decay included); the
originals are also zeroed when a mask is set, so checkpoints hold no stale values. Pure helpers turn scores into masks
(global or per-layer top-k), ShrinkBench-style, so every strategy is a few lines on top and unit-testable.
"""

from __future__ import annotations

import io
import math

import numpy as np
import torch
from torch import nn
from torch.nn.utils import parametrize

from ..models import MultiTaskNet, prunable_layers


class WeightMask(nn.Module):
    def __init__(self, shape: torch.Size, device: torch.device | str = "cpu") -> None:
        super().__init__()
        # on the weight's device: registering a parametrization evaluates it once, on the weight
        self.register_buffer("mask", torch.ones(shape, device=device))

    def forward(self, w: torch.Tensor) -> torch.Tensor:
        return w * self.mask


def install_masks(model: MultiTaskNet) -> None:
    """Give every prunable weight an all-ones mask (idempotent); call before loading a pruned state dict."""
    for layer in prunable_layers(model):
        if not parametrize.is_parametrized(layer.module, "weight"):
            w = layer.module.weight
            parametrize.register_parametrization(layer.module, "weight", WeightMask(w.shape, w.device))


def _mask_module(module: nn.Module) -> WeightMask:
    return module.parametrizations.weight[0]


def original(module: nn.Module) -> torch.Tensor:
    return module.parametrizations.weight.original


def flat(t: torch.Tensor) -> torch.Tensor:
    """All of `t`'s elements as one 1-D tensor in memory order: a view (no copy) for contiguous and channels_last
    weights. Only for order-free reductions (sums, k-th values) or tensors of the same strides."""
    if t.is_contiguous():
        return t.view(-1)
    if t.dim() == 4 and t.is_contiguous(memory_format=torch.channels_last):
        return t.permute(0, 2, 3, 1).reshape(-1)  # NHWC in memory: this permutation is contiguous, so a view
    return t.reshape(-1)


def get_masks(model: MultiTaskNet) -> dict[str, torch.Tensor]:
    return {layer.name: _mask_module(layer.module).mask.clone() for layer in prunable_layers(model)}


@torch.no_grad()
def set_masks(model: MultiTaskNet, masks: dict[str, torch.Tensor]) -> None:
    """Install the given 0/1 masks and zero the originals they prune."""
    install_masks(model)
    for layer in prunable_layers(model):
        m = masks[layer.name].to(original(layer.module).dtype)
        _mask_module(layer.module).mask.copy_(m)
        original(layer.module).mul_(m)


@torch.no_grad()
def effective_weights(model: MultiTaskNet) -> dict[str, torch.Tensor]:
    """The weight each prunable layer uses in its forward pass, keyed by layer name."""
    return {layer.name: layer.module.weight.detach().clone() for layer in prunable_layers(model)}


def plain_state_dict(model: nn.Module) -> dict[str, torch.Tensor]:
    """State dict of a plain (unparametrized) copy: parametrized weights are baked in (mask applied, thresholds
    applied), so it loads into a fresh model of the same architecture. The model itself is left untouched (removing
    parametrizations from a deep copy would edit the class the copy shares with the original)."""
    baked: dict[str, tuple[str, torch.Tensor]] = {}  # state-dict prefix of a parametrization -> (plain key, value)
    with torch.no_grad():
        for name, module in model.named_modules():
            if parametrize.is_parametrized(module):
                for pname in module.parametrizations.keys():
                    stem = f"{name}." if name else ""
                    baked[f"{stem}parametrizations.{pname}."] = (f"{stem}{pname}", getattr(module, pname).detach())
    state: dict[str, torch.Tensor] = {}
    for key, value in model.state_dict().items():
        prefix = next((p for p in baked if key.startswith(p)), None)
        if prefix is None:
            state[key] = value.detach().cpu()
        elif baked[prefix][0] not in state:
            state[baked[prefix][0]] = baked[prefix][1].cpu().clone()
    return state


# ---------------------------------------------------------------------------------------------------------------------
# Scores -> masks
# ---------------------------------------------------------------------------------------------------------------------
def _keep_count(numel: int, sparsity: float) -> int:
    return int(round(numel * (1.0 - sparsity)))


def topk_mask(score: torch.Tensor, keep: int) -> torch.Tensor:
    """1 for the `keep` largest scores: exactly `keep` ones, also when scores tie at the boundary. Which of the tied
    scores are kept is `torch.topk`'s choice: the same for the same input on one machine and build, but not by
    position (of ten equal scores, three kept are not necessarily the first three)."""
    flat = score.reshape(-1)
    mask = torch.zeros_like(flat)
    if keep > 0:
        mask[torch.topk(flat, keep, sorted=False).indices] = 1.0
    return mask.reshape(score.shape)


def global_masks(scores: dict[str, torch.Tensor], sparsity: float) -> dict[str, torch.Tensor]:
    """One threshold over the union of all tensors: exactly round((1 - s) N) weights kept."""
    names = list(scores)
    flat = torch.cat([scores[n].reshape(-1).float() for n in names])
    mask = topk_mask(flat, _keep_count(flat.numel(), sparsity))
    out, i = {}, 0
    for n in names:
        k = scores[n].numel()
        out[n] = mask[i:i + k].reshape(scores[n].shape)
        i += k
    return out


def layer_masks(scores: dict[str, torch.Tensor], sparsity: float) -> dict[str, torch.Tensor]:
    """The same fraction in every tensor (at least one weight kept per layer so no layer is cut off)."""
    return {n: topk_mask(s.float(), max(1, _keep_count(s.numel(), sparsity))) for n, s in scores.items()}


def kept_magnitudes(model: MultiTaskNet) -> dict[str, torch.Tensor]:
    """|w| of the weights the current masks keep, -1 for pruned ones: top-k on these never revives a weight."""
    current = get_masks(model)
    return {n: torch.where(current[n] > 0, w.abs(), torch.full_like(w, -1.0))
            for n, w in effective_weights(model).items()}


# ---------------------------------------------------------------------------------------------------------------------
# Sparse export: a bitmask of kept positions + float32 values of the kept weights, per prunable tensor.
# ---------------------------------------------------------------------------------------------------------------------
def export_sparse(state: dict[str, torch.Tensor], prunable: list[str]) -> bytes:
    """Serialize a plain state dict with its prunable weights as (shape, packed bitmask, nonzero values)."""
    packed: dict[str, object] = {}
    for key, value in state.items():
        name = key[:-len(".weight")] if key.endswith(".weight") else None
        if name in prunable:
            arr = value.float().numpy().reshape(-1)
            nz = arr != 0
            packed[key] = {"shape": tuple(value.shape), "bits": np.packbits(nz), "values": arr[nz].astype(np.float32)}
        else:
            packed[key] = value
    buf = io.BytesIO()
    torch.save(packed, buf)
    return buf.getvalue()


# what the sparse format holds besides tensors and plain containers: numpy arrays of the bitmask and the kept values
_NUMPY_ARRAYS = [np.ndarray, np.dtype, np.dtypes.UInt8DType, np.dtypes.Float32DType, np._core.multiarray._reconstruct,
                 bytes]


def import_sparse(blob: bytes) -> dict[str, torch.Tensor]:
    """A model exported by `export_sparse`, read with `weights_only=True` (numpy's arrays allowed, nothing else
    executes), back to a plain state dict."""
    with torch.serialization.safe_globals(_NUMPY_ARRAYS):
        packed = torch.load(io.BytesIO(blob), weights_only=True)
    out = {}
    for key, value in packed.items():
        if isinstance(value, dict) and "bits" in value:
            n = math.prod(value["shape"])
            nz = np.unpackbits(value["bits"])[:n].astype(bool)
            arr = np.zeros(n, np.float32)
            arr[nz] = value["values"]
            out[key] = torch.from_numpy(arr.reshape(value["shape"]))
        else:
            out[key] = value
    return out
