"""STR, soft threshold weight reparameterization (Kusupati et al., ICML 2020), one learnable threshold per layer.

Every prunable weight is used as S(W, s) = sign(W)·ReLU(|W| − sigmoid(s)) with a learnable scalar s per layer, trained
jointly with the weights by the same Adam (coupled L2 weight decay on s pushes sigmoid(s) up, the task loss pushes it
down). STR has no sparsity target: what it reaches is reported. How its knobs are set here (`init`):
`target` (default) starts every layer's threshold at the global magnitude quantile of the dense weights at the requested
sparsity (so the run starts near the target and STR's dynamics then move each layer), or a float s_init used for every
layer (the STR/AdapMTL style, e.g. -15). Starts from the dense reference, as AdapMTL ran its comparisons.
The exported model bakes S(W, s) in (a plain mask of W would keep the un-shrunk values).

`SoftThreshold` takes its threshold parameter from outside so that AdapMTL can share one per component.
"""

from __future__ import annotations

import bisect
import ctypes
import itertools
import math

import torch
from torch import nn
from torch.nn.utils import parametrize

from ..models import prunable_layers
from .base import STRATEGIES, PruningStrategy, TrainContext, param
from .masks import original
from .masked import load_into_masked
from .native import soft_threshold_kernel


class SoftThreshold(nn.Module):
    """S(W) = sign(W)·ReLU(|W| − sigmoid(s)) of one layer. In a training forward pass of the whole model the value
    comes from `fused` (every layer's S(W) computed at once by `SoftShrinkAll`, set by the model's pre-hook); elsewhere
    (evaluation, export, sparsity counts, a sub-module called alone) it is computed here, by the same function."""

    def __init__(self, sparse_threshold: nn.Parameter) -> None:
        super().__init__()
        self.sparse_threshold = sparse_threshold
        self.fused: torch.Tensor | None = None

    def forward(self, w: torch.Tensor) -> torch.Tensor:
        if self.fused is not None:
            return self.fused
        return SoftShrink.apply(self.sparse_threshold, w)


def _dense_layout(t: torch.Tensor) -> bool:
    return t.is_contiguous() or (t.dim() == 4 and t.is_contiguous(memory_format=torch.channels_last))


def _flat_like(g: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    """`g`'s elements as 1-D in the memory order of `like` (a view when the two share a layout)."""
    if like.dim() == 4 and not like.is_contiguous():  # channels_last: N, H, W, C in memory
        return g.permute(0, 2, 3, 1).reshape(-1)
    return g.reshape(-1)


class FlatPlan:
    """Every soft-thresholded weight of a model as a view into one flat buffer (`flat`), laid out group by group
    (the layers of one threshold contiguous, in model order), so that S(W), its gradients and the projection's
    slack are a few passes over one tensor instead of a few kernels per layer. Lives on the model
    (`_soft_threshold_plan`), so a deep copy carries its own."""

    def __init__(self, modules: list[nn.Module], params: list[nn.Parameter], thresholds: list[nn.Parameter],
                 group_of: tuple[int, ...]) -> None:
        self.modules, self.params, self.thresholds = modules, params, thresholds
        order = sorted(range(len(params)), key=lambda i: group_of[i])  # stable: model order inside a group
        self.sizes = [params[i].numel() for i in order]  # in the buffer's order
        ends = list(itertools.accumulate(self.sizes, initial=0))
        self.offsets = [0] * len(params)  # in model order
        for position, i in enumerate(order):
            self.offsets[i] = ends[position]
        groups = [group_of[i] for i in order]  # sorted
        # each threshold's layers (positions in the buffer's order) and weights (a range of the buffer)
        self.layer_spans = [(bisect.bisect_left(groups, g), bisect.bisect_right(groups, g))
                            for g in range(len(thresholds))]
        self.group_spans = [(ends[a], ends[b]) for a, b in self.layer_spans]
        self.order = order  # buffer position -> model index
        self.use_kernel = True  # on CPU (`_kernel_applies`); tests switch it off to check the torch ops against it
        self._c: tuple | None = None
        self._grad_strides: tuple | None = None  # the gradients' strides the kernel's row arrays were written for
        self._grad_layouts: list[tuple[int, int] | None] = []
        self.cache_keys: list[tuple[int, str]] = []  # set by `fuse_soft_thresholds`
        self.cache_context = None  # the `parametrize.cached()` context open during a training forward pass
        self.cache_added: list[tuple[int, str]] = []  # the keys it seeded
        self.flat: torch.Tensor | None = None
        self.geometry: list[tuple[tuple[int, ...], tuple[int, ...], int]] = []  # each weight's view: set by `bind`
        self.pointers: list[int] = []

    def bind(self) -> torch.Tensor:
        """The flat buffer, (re)built when the weights are not views of it (first use, or after `model.to`, which
        gives parameters new storage): values copied in, each parameter's data made a view with its own strides."""
        f = self.flat
        if f is not None and self.params[0].device == f.device and [p.data_ptr() for p in self.params] == self.pointers:
            return f
        p0 = self.params[0]
        f = torch.empty(sum(self.sizes), dtype=p0.dtype, device=p0.device)
        with torch.no_grad():
            for i, p in enumerate(self.params):
                if not _dense_layout(p):
                    p.data = p.data.contiguous()
                f[self.offsets[i]:self.offsets[i] + p.numel()].copy_(_flat_like(p.detach(), p))
                p.data = f.as_strided(p.shape, p.stride(), self.offsets[i])
        self.geometry = [(tuple(p.shape), tuple(p.stride()), o) for p, o in zip(self.params, self.offsets)]
        self.pointers = [p.data_ptr() for p in self.params]  # what `bind` checks: still views of this buffer
        self.flat = f
        return f

    def c_arrays(self) -> tuple[ctypes.Array, ...]:
        """What the kernel reads: the group bounds, the layer sizes (buffer order), and per layer a slot for the
        address of its gradient, its number of rows and their stride (`grad_layouts`). Made once; a copy of the plan
        makes its own (ctypes arrays do not deep-copy)."""
        if self._c is None:
            n = len(self.sizes)
            self._c = ((ctypes.c_int64 * (len(self.thresholds) + 1))(0, *(b for _, b in self.group_spans)),
                       (ctypes.c_int64 * n)(*self.sizes), (ctypes.c_void_p * n)(), (ctypes.c_int64 * n)(),
                       (ctypes.c_int64 * n)())
        return self._c

    def grad_layouts(self, strides: tuple[tuple[int, ...], ...]) -> list[tuple[int, int] | None]:
        """How each weight's gradient (`strides`: theirs, in model order) lies in memory as the kernel reads it, in
        the buffer's order: (rows, row stride), the rows holding the weight's elements in its view's order, or None
        where it does not (the caller copies that one). Gradients come as their weight (1 row) or, for the fused
        heads' branch classifiers, as a view into a wider gradient (its outermost dimension strided). The strides are
        the same from step to step: the kernel's row arrays are written only when they change."""
        if strides != self._grad_strides:
            layouts = []
            for i in self.order:
                shape, stride, _ = self.geometry[i]
                grad_stride = strides[i]
                dims = sorted((d for d in range(len(shape)) if shape[d] > 1), key=lambda d: -stride[d])  # outer first
                layout = None
                if all(grad_stride[d] == stride[d] for d in dims):  # the same memory order (size-1 dimensions aside)
                    layout = (1, 0)
                elif all(grad_stride[d] == stride[d] for d in dims[1:]) and grad_stride[dims[0]] >= stride[dims[0]]:
                    layout = (shape[dims[0]], grad_stride[dims[0]])
                layouts.append(layout)
            _, _, _, rows, row_strides = self.c_arrays()
            rows[:] = [layout[0] if layout else 1 for layout in layouts]  # a copy (None) is read as one row
            row_strides[:] = [layout[1] if layout else 0 for layout in layouts]
            self._grad_strides, self._grad_layouts = strides, layouts
        return self._grad_layouts

    def __getstate__(self) -> dict:
        return {**self.__dict__, "_c": None, "_grad_strides": None}

    def views(self, flat: torch.Tensor) -> list[torch.Tensor]:
        """`flat` (laid out as the buffer) cut into tensors shaped and strided as the weights, in model order."""
        return [flat.as_strided(shape, stride, o) for shape, stride, o in self.geometry]


def _consumed_dtype(t: torch.Tensor) -> torch.dtype:
    """The dtype the layers will compute with: inside an autocast region its lower precision (the convolutions cast
    their weights to it), so the whole buffer is cast once here instead of layer by layer there; elsewhere `t`'s."""
    device = t.device.type
    return torch.get_autocast_dtype(device) if torch.is_autocast_enabled(device) else t.dtype


def _kernel_applies(plan: FlatPlan, dtype: torch.dtype) -> bool:
    return plan.use_kernel and plan.flat.device.type == "cpu" and dtype in (torch.float32, torch.bfloat16)


def _forward_kernel(plan: FlatPlan, lams: list[float], dtype: torch.dtype) -> tuple[torch.Tensor, torch.Tensor]:
    """S (in `dtype`) and sign(S) as int8, one pass (`soft_threshold.c`)."""
    flat = plan.flat
    out = torch.empty(flat.shape, dtype=dtype)
    signs = torch.empty(flat.shape, dtype=torch.int8)
    bounds = plan.c_arrays()[0]
    soft_threshold_kernel().st_forward(flat.data_ptr(), bounds, (ctypes.c_float * len(lams))(*lams),
                                       len(lams), out.data_ptr(), int(dtype == torch.bfloat16), signs.data_ptr())
    return out, signs


def _forward_torch(plan: FlatPlan, lams: list[float], dtype: torch.dtype) -> tuple[torch.Tensor, torch.Tensor]:
    """The same S and sign(S) (float32) in torch ops: two passes per threshold span (clamp with a number bound is
    several times faster than with a tensor bound), the sign while the span is in cache, one cast at the end."""
    flat = plan.flat
    out = torch.empty_like(flat)
    signs = torch.empty_like(flat)
    for (a, b), bound in zip(plan.group_spans, lams):
        torch.clamp(flat[a:b], -bound, bound, out=out[a:b])
        torch.sub(flat[a:b], out[a:b], out=out[a:b])
        torch.sign(out[a:b], out=signs[a:b])
    return out.to(dtype), signs


def _backward_kernel(plan: FlatPlan, signs: torch.Tensor, grads: tuple[torch.Tensor, ...], lams: list[float]):
    """dL/dW (float32, the buffer's layout) and each threshold's gradient −λ(1 − λ)·Σ dL/dS·sign(S), the sum in
    float64 in the kernel's fixed order (over the group's layers in buffer order), the product in float64, rounded
    once to float32; one pass (`soft_threshold.c`). The gradients come in S's dtype (autograd casts them)."""
    dtype = grads[0].dtype
    _, sizes, slots, rows, row_strides = plan.c_arrays()
    held = []  # gradients re-laid out for the kernel, alive until it has read them
    pointers = []
    for i, layout in zip(plan.order, plan.grad_layouts(tuple(grad.stride() for grad in grads))):
        grad = grads[i]
        if layout is None:  # not as the kernel reads it (not seen in training: a safety net)
            shape, stride, _ = plan.geometry[i]
            grad = torch.empty_strided(shape, stride, dtype=dtype).copy_(grad)
            held.append(grad)
        pointers.append(grad.data_ptr())
    slots[:] = pointers
    g = torch.empty(signs.shape, dtype=torch.float32)
    sums = torch.empty(len(plan.sizes), dtype=torch.float64)
    soft_threshold_kernel().st_backward(slots, int(dtype == torch.bfloat16), sizes, rows, row_strides,
                                        len(plan.sizes), signs.data_ptr(), g.data_ptr(), sums.data_ptr())
    per_layer = sums.tolist()
    per_group = [sum(per_layer[a:b]) for a, b in plan.layer_spans]
    return g, torch.tensor([-v * lam * (1 - lam) for v, lam in zip(per_group, lams)], dtype=torch.float32)


def _backward_torch(plan: FlatPlan, signs: torch.Tensor, grads: tuple[torch.Tensor, ...], lams: list[float]):
    """The same in torch ops, float32 throughout: the gradients widened into one float32 buffer by one
    `_foreach_copy_`, multiplied by the signs, summed per layer and per group (torch's order), multiplied by the signs
    again."""
    g = torch.empty_like(signs)
    torch._foreach_copy_(plan.views(g), list(grads))
    g.mul_(signs)  # sign(W)·dL/dS where kept, ±0 where pruned
    per_layer = torch.stack([product.sum() for product in g.split(plan.sizes)])  # in the buffer's order
    per_group = torch.stack([per_layer[a:b].sum() for a, b in plan.layer_spans])
    g.mul_(signs)  # dL/dW: back to dL/dS where kept (sign² = 1), ±0 where pruned
    lam = torch.tensor(lams, dtype=torch.float32, device=g.device)
    return g, -per_group * lam * (1 - lam)


class SoftShrinkAll(torch.autograd.Function):
    """Every soft-thresholded layer in one autograd node, over the flat buffer (`FlatPlan`). Forward:
    S = W − clamp(W, −λ, λ) with λ = sigmoid(s_g) of each weight's threshold (W − λ above λ, W + λ below −λ, exactly
    +0 between: the same floats as `F.softshrink`). Backward: dL/dW = dL/dS where S ≠ 0 (0 elsewhere, as
    softshrink's backward), and for each threshold dL/ds_g = −λ_g(1 − λ_g) Σ_{weights of g} dL/dS·sign(W)
    (dS/dλ = −sign(W) where kept). Inputs: the plan, the thresholds, the weights (views of the buffer: autograd routes
    their gradients; the arithmetic reads the buffer).

    On CPU both directions run in the compiled kernel (`soft_threshold.c`, one pass each; the threshold sums in
    float64 in a fixed order); elsewhere (CUDA) in torch ops (`_forward_torch`, `_backward_torch`: float32 sums in
    torch's order). Tests check S and dL/dW bit for bit between the two and against per-layer softshrink, and the
    threshold gradients against an exactly rounded sum.

    Inside an autocast region S comes out in its dtype, cast once for the whole buffer: the same values as each
    convolution's own cast, without 48 casts and their 48 backward nodes; the 16-bit gradients are widened back to
    float32 (the arithmetic stays in float32)."""

    @staticmethod
    def forward(ctx, plan: FlatPlan, *tensors: torch.Tensor) -> tuple[torch.Tensor, ...]:
        # λ as numbers: float32 values, so ±λ are exactly the kernel's bounds
        lams = [float(torch.sigmoid(s.detach())) for s in tensors[:len(plan.thresholds)]]
        dtype = _consumed_dtype(plan.flat)
        forward = _forward_kernel if _kernel_applies(plan, dtype) else _forward_torch
        out, signs = forward(plan, lams, dtype)
        ctx.plan, ctx.lams = plan, lams
        ctx.save_for_backward(signs)  # sign(W) where kept, 0 where pruned: the mask and the sign at once
        return tuple(plan.views(out))

    @staticmethod
    def backward(ctx, *grads: torch.Tensor):
        plan: FlatPlan = ctx.plan
        (signs,) = ctx.saved_tensors
        backward = _backward_kernel if signs.dtype == torch.int8 else _backward_torch
        g, grad_s = backward(plan, signs, grads, ctx.lams)
        thresholds: list[torch.Tensor | None] = [None] * len(plan.thresholds)
        if any(ctx.needs_input_grad[1:1 + len(plan.thresholds)]):
            thresholds = [t.reshape(s.shape) for t, s in zip(grad_s.unbind(), plan.thresholds)]
        return (None, *thresholds, *plan.views(g))


class SoftShrink(torch.autograd.Function):
    """One layer's S(W) outside a whole-model training pass (evaluation, export, a sub-module called alone): the
    same forward and gradients as `SoftShrinkAll`, for one weight."""

    @staticmethod
    def forward(ctx, s: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
        lam = torch.sigmoid(s.detach())
        out = w - torch.clamp(w, -lam, lam)
        ctx.save_for_backward(lam, torch.sign(out))
        return out

    @staticmethod
    def backward(ctx, grad: torch.Tensor):
        lam, signs = ctx.saved_tensors
        g = grad * signs.abs()
        return -(signs * g).sum() * lam * (1 - lam), g


def _fuse_pre_hook(model: nn.Module, args) -> None:
    plan: FlatPlan = model._soft_threshold_plan
    if not torch.is_grad_enabled():  # evaluation: each layer computes its own value, no autograd node needed
        for m in plan.modules:
            m.__dict__["fused"] = None
        return
    plan.bind()
    fused = SoftShrinkAll.apply(plan, *plan.thresholds, *plan.params)
    for m, s in zip(plan.modules, fused):
        m.__dict__["fused"] = s  # a plain attribute: nn.Module.__setattr__ costs ~1.5 µs a layer, twice a step
    # torch's parametrization cache (`parametrize.cached`), seeded with these values under its keys (module id,
    # tensor name): each layer's `weight` is then a dictionary lookup instead of a call through its
    # ParametrizationList (~9 µs a layer). A key that misses (a layer whose property belongs to another module object)
    # still gets the same value, through `SoftThreshold.forward`; a weight an enclosing `cached()` already holds (a
    # caller that takes gradients w.r.t. it) keeps its entry.
    context = parametrize.cached()
    context.__enter__()
    cache = parametrize._cache
    plan.cache_added = [key for key, s in zip(plan.cache_keys, fused) if cache.setdefault(key, s) is s]
    plan.cache_context = context


def _fuse_post_hook(model: nn.Module, args, output) -> None:
    """After every forward pass, also one that raised (registered with `always_call`): the values belong to this
    pass (the weights change at the next step), so they leave the modules and the cache."""
    plan: FlatPlan = model._soft_threshold_plan
    for m in plan.modules:
        m.__dict__["fused"] = None
    context, plan.cache_context = plan.cache_context, None
    if context is not None:
        for key in plan.cache_added:
            parametrize._cache.pop(key, None)  # ours, also when an enclosing `cached()` keeps the cache alive
        context.__exit__(None, None, None)


def flat_plan(model: nn.Module) -> FlatPlan:
    """The model's soft-threshold plan with its flat buffer bound (`FlatPlan.bind`)."""
    plan: FlatPlan = model._soft_threshold_plan
    plan.bind()
    return plan


def fuse_soft_thresholds(model: nn.Module) -> None:
    """Compute every layer's S(W) at once in each forward pass of `model` with gradients enabled (`SoftShrinkAll`).
    The plan is an attribute of the model (a deep copy carries its own); the hooks are registered once."""
    layers = prunable_layers(model)
    modules = [layer.module.parametrizations.weight[0] for layer in layers]
    index: dict[int, int] = {}
    for m in modules:
        index.setdefault(id(m.sparse_threshold), len(index))
    thresholds = list({id(m.sparse_threshold): m.sparse_threshold for m in modules}.values())
    plan = FlatPlan(modules, [original(layer.module) for layer in layers], thresholds,
                    tuple(index[id(m.sparse_threshold)] for m in modules))
    plan.cache_keys = [(id(layer.module), "weight") for layer in layers]  # parametrize's cache keys
    model._soft_threshold_plan = plan
    if not getattr(model, "_soft_threshold_hooked", False):
        model.register_forward_pre_hook(_fuse_pre_hook)
        model.register_forward_hook(_fuse_post_hook, always_call=True)
        model._soft_threshold_hooked = True


def install_soft_thresholds(model, group_of: dict[str, str], s_init: float = 0.0) -> dict[str, nn.Parameter]:
    """One threshold per group (layer name -> group); returns the parameters by group. Idempotent."""
    thresholds: dict[str, nn.Parameter] = {}
    for layer in prunable_layers(model):
        if parametrize.is_parametrized(layer.module, "weight"):
            thresholds[group_of[layer.name]] = layer.module.parametrizations.weight[0].sparse_threshold
            continue
        g = group_of[layer.name]
        if g not in thresholds:  # on the weights' device (a CPU threshold would stay behind a model moved to CUDA)
            thresholds[g] = nn.Parameter(torch.tensor(float(s_init), device=layer.module.weight.device))
        parametrize.register_parametrization(layer.module, "weight", SoftThreshold(thresholds[g]))
    return thresholds


def logit(p: float) -> float:
    p = min(max(p, 1e-12), 1 - 1e-7)
    return math.log(p / (1 - p))


@STRATEGIES.register("str")
class STR(PruningStrategy):
    needs_dense = True
    code_paths = ("soft_threshold",)  # threshold gradients summed by the compiled kernel (`SoftShrinkAll`)
    granularity = "layer"  # AdapMTL overrides: one threshold per component

    def __init__(self, cfg):
        super().__init__(cfg)
        init = self.params.get("init", "target")
        if init != "target":
            init = param(self.params, "init", 0.0, float, lambda v: -1e4 < v < 1e4, "'target' or a float s_init")
        self.init = self.params.resolved["init"] = init
        self.thresholds: dict[str, nn.Parameter] = {}

    def groups(self, model) -> dict[str, str]:
        return {layer.name: layer.name for layer in prunable_layers(model)}

    def install(self, model) -> None:
        self.thresholds = install_soft_thresholds(model, self.groups(model))
        fuse_soft_thresholds(model)

    def setup(self, ctx: TrainContext) -> None:
        if ctx.dense_state is not None:
            load_into_masked(ctx.model, ctx.dense_state)
        if self.init == "target":
            with torch.no_grad():
                raw = torch.cat([original(layer.module).abs().reshape(-1) for layer in prunable_layers(ctx.model)])
                k = max(1, int(round(self.cfg.sparsity * raw.numel())))
                s0 = logit(float(raw.kthvalue(k).values))
        else:
            s0 = float(self.init)
        with torch.no_grad():
            for p in self.thresholds.values():
                p.fill_(s0)

    def scalars(self):
        return {f"threshold/{g}": float(torch.sigmoid(p.detach())) for g, p in self.thresholds.items()
                if self.granularity != "layer"}

