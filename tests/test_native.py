"""The compiled soft-threshold kernel (`pruning/soft_threshold.c` via `pruning.native`): its S(W), bf16 cast, signs
and weight gradients are torch's, bit for bit, on ordinary and special values; its threshold sums are float64 sums
within float64 rounding of the exact sum; a missing compiler or a corrupt cached build gives a clear error or a
rebuild, never other numbers."""

from __future__ import annotations

import ctypes
import hashlib
import math
import os
import subprocess
import sys

import pytest
import torch

from mtlprune.core.pruning import native

SPECIAL = [0.0, -0.0, 1e-45, -1e-45, 1e-39, -3e-39, 1e-30, 0.25, -0.25, 1.0, -1.0, 3.0e38, -3.4e38, float("inf"),
           float("-inf"), float("nan"), 1.00390625, 1.01171875, 1.0 + 2 ** -8, 1.0 + 3 * 2 ** -9, -(1.0 + 2 ** -8)]


def _values(n: int, seed: int) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, generator=g) * 0.05
    x[: len(SPECIAL)] = torch.tensor(SPECIAL)
    return x


def _forward(x: torch.Tensor, bounds: list[int], lams: list[float], bf16: bool):
    out = torch.empty(x.shape, dtype=torch.bfloat16 if bf16 else torch.float32)
    signs = torch.empty(x.shape, dtype=torch.int8)
    native.soft_threshold_kernel().st_forward(
        x.data_ptr(), (ctypes.c_int64 * len(bounds))(*bounds), (ctypes.c_float * len(lams))(*lams), len(lams),
        out.data_ptr(), int(bf16), signs.data_ptr())
    return out, signs


def _bits(t: torch.Tensor) -> torch.Tensor:
    return t.view(torch.int16 if t.dtype == torch.bfloat16 else torch.int32)


@pytest.mark.parametrize("bf16", [False, True], ids=["float32", "bf16"])
def test_forward_is_torchs_clamp_subtract_cast_and_sign_bit_for_bit(bf16):
    x = _values(5000, 0)
    x[100:110] = torch.tensor([0.03, -0.03, 0.02, -0.02] * 2 + [0.0, -0.0])  # exactly on a threshold
    bounds, lams = [0, 1000, 1003, 5000], [0.0, 0.02, float(torch.tensor(0.03))]  # empty-ish, tiny, ordinary groups
    out, signs = _forward(x, bounds, lams, bf16)
    reference = torch.cat([x[a:b] - torch.clamp(x[a:b], -lam, lam) for a, b, lam in zip(bounds, bounds[1:], lams)])
    nan = reference.isnan()
    assert torch.equal(out.isnan(), nan)  # a NaN stays a NaN (its bit pattern is nobody's business)
    expected = reference.to(out.dtype)
    assert torch.equal(_bits(out)[~nan], _bits(expected)[~nan])  # signed zeros, infinities, rounding ties included
    assert torch.equal(signs[~nan], torch.sign(reference[~nan]).to(torch.int8))


@pytest.mark.parametrize("bf16", [False, True], ids=["float32", "bf16"])
def test_backward_gives_torchs_weight_gradients_and_float64_sums(bf16):
    g = torch.Generator().manual_seed(1)
    # shorter than a lane group, exact multiples, long; the last two as rows of a wider gradient (a view, as the fused
    # heads' classifiers get theirs)
    sizes, rows = [0, 7, 16, 33, 1000, 40000, 13 * 32, 3 * 5], [1, 1, 1, 1, 1, 1, 13, 3]
    dtype = torch.bfloat16 if bf16 else torch.float32
    wide_grads = [torch.randn(r, k // r + (37 if r > 1 else 0), generator=g).mul_(
        10.0 ** torch.randint(-6, 3, (r, 1), generator=g).float()).to(dtype) for k, r in zip(sizes, rows)]
    grads = [w[:, 5:5 + k // r] if r > 1 else w.reshape(-1) for w, k, r in zip(wide_grads, sizes, rows)]
    n = sum(sizes)
    signs = torch.randint(-1, 2, (n,), generator=g, dtype=torch.int8)
    out = torch.empty(n)
    sums = torch.empty(len(sizes), dtype=torch.float64)
    c = [ctypes.c_int64 * len(sizes), ctypes.c_void_p * len(sizes)]
    native.soft_threshold_kernel().st_backward(
        c[1](*[t.data_ptr() for t in grads]), int(bf16), c[0](*sizes), c[0](*rows),
        c[0](*[t.stride(0) if r > 1 else 0 for t, r in zip(grads, rows)]), len(sizes), signs.data_ptr(),
        out.data_ptr(), sums.data_ptr())
    wide = torch.cat([t.float().reshape(-1) for t in grads])
    s = signs.float()
    assert torch.equal(_bits(out), _bits(wide * s * s))  # dL/dS where kept, the same signed zero where pruned
    offset = 0
    for k, total in zip(sizes, sums.tolist()):
        terms = (wide[offset:offset + k] * s[offset:offset + k]).double().tolist()
        exact = math.fsum(terms)
        assert abs(total - exact) <= 1e-12 * math.fsum(abs(t) for t in terms)
        offset += k
    # the rows change where the elements are read from, not the order they are summed in
    contiguous = [t.contiguous().reshape(-1) for t in grads]
    again, scratch = torch.empty(len(sizes), dtype=torch.float64), torch.empty(n)
    native.soft_threshold_kernel().st_backward(
        c[1](*[t.data_ptr() for t in contiguous]), int(bf16), c[0](*sizes), c[0](*[1] * len(sizes)),
        c[0](*[0] * len(sizes)), len(sizes), signs.data_ptr(), scratch.data_ptr(), again.data_ptr())
    assert again.tolist() == sums.tolist()


def test_a_missing_compiler_is_one_clear_error(monkeypatch, tmp_path):
    monkeypatch.setenv("MTLPRUNE_NATIVE", str(tmp_path))
    monkeypatch.setenv("CC", str(tmp_path / "no-such-cc"))
    native.soft_threshold_kernel.cache_clear()
    try:
        with pytest.raises(native.KernelUnavailable, match="apt install gcc"):
            native.soft_threshold_kernel()
    finally:
        native.soft_threshold_kernel.cache_clear()


def _cache(monkeypatch, folder):
    monkeypatch.setenv("MTLPRUNE_NATIVE", str(folder))
    native.soft_threshold_kernel.cache_clear()
    return folder / f"soft_threshold-{native._key(native.compiler())}.so"


def _works() -> None:
    out, _ = _forward(torch.tensor([0.5, -0.1]), [0, 2], [0.25], False)
    assert out.tolist() == [0.25, 0.0]


def _left(folder) -> list[str]:
    """What a build leaves besides the kernel, its hash record and its lock: nothing (no temporary files)."""
    return sorted(p.name for p in folder.iterdir() if not p.name.endswith((".so", ".so.sha256", ".so.lock")))


@pytest.fixture
def built(monkeypatch, tmp_path_factory):
    """A real build of the kernel (its bytes), made once in a folder of its own."""
    target = _cache(monkeypatch, tmp_path_factory.mktemp("built"))
    native.soft_threshold_kernel()
    native.soft_threshold_kernel.cache_clear()
    return target.read_bytes()


@pytest.mark.parametrize("damage", ["garbage", "first 1000 bytes", "first 20000 bytes", "foreign", "no record"])
def test_a_damaged_or_foreign_cached_build_is_never_loaded_but_rebuilt(damage, built, monkeypatch, tmp_path):
    """A truncated copy of a real build (loading one can crash the process with a bus error), another library under
    the kernel's name, or a file without its recorded hash: rebuilt in place before anything loads it."""
    target = _cache(monkeypatch, tmp_path)
    if damage == "garbage":
        target.write_bytes(b"\x7fELF truncated")  # what a crash in the middle of a copy could leave
    elif damage.startswith("first"):
        target.write_bytes(built[:int(damage.split()[1])])
    elif damage == "foreign":  # a real shared object, but not this kernel (no st_* symbols)
        src = tmp_path / "foreign.c"
        src.write_text("int answer(void) { return 42; }\n")
        subprocess.run([*native.compiler(), "-shared", "-fPIC", "-o", str(target), str(src)], check=True)
        src.unlink()
    else:
        target.write_bytes(built)
    if damage != "no record":  # a record that matches what was there before the damage
        target.with_name(target.name + ".sha256").write_text(hashlib.sha256(built).hexdigest())
    try:
        native.soft_threshold_kernel()
        _works()
        assert target.read_bytes() == built or damage == "no record"  # rebuilt in place, the same program
        assert target.with_name(target.name + ".sha256").read_text() == hashlib.sha256(target.read_bytes()).hexdigest()
        assert _left(tmp_path) == []
    finally:
        native.soft_threshold_kernel.cache_clear()


def test_an_unwritable_cache_folder_is_one_clear_error(monkeypatch, tmp_path):
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    _cache(monkeypatch, blocker / "native")  # a folder that cannot be made (as root, permissions do not stop us)
    try:
        with pytest.raises(native.KernelUnavailable, match="MTLPRUNE_NATIVE"):
            native.soft_threshold_kernel()
    finally:
        native.soft_threshold_kernel.cache_clear()


def test_the_command_line_names_a_missing_compiler_without_a_traceback(tmp_path):
    env = {**os.environ, "CC": str(tmp_path / "no-such-cc"), "MTLPRUNE_NATIVE": str(tmp_path / "native"),
           "MTLPRUNE_DATA": str(tmp_path / "data")}
    proc = subprocess.run([sys.executable, "-m", "mtlprune", "run", "--profile", "smoke", "--method", "str",
                           "--sparsity", "0.9", "--set", "train.iterations=2", "--no-progress"], env=env,
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 2
    assert "Traceback" not in proc.stderr and "error:" in proc.stderr and "apt install gcc" in proc.stderr
