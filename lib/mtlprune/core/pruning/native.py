"""The compiled soft-threshold kernel (`soft_threshold.c`), and nothing else: built once per machine with the system
C compiler, cached in `paths.native_dir()`, loaded with ctypes.

Why a kernel: on CPU, AdapMTL's and STR's S(W) and its backward were ~8 torch passes over the flat weight buffer per
step, and their cost over the dense step was set by memory traffic (it doubled when neighbours loaded the machine).
The kernel does each direction in one pass; its numerics are documented in the source (S, dL/dW and the bf16 cast bit
for bit as torch's; threshold sums in float64 in an order fixed by the source, the same on every CPU and build).

The cache key is the source, the compiler (its path and `--version`), the flags and the CPU's feature flags
(`-march=native`), so a shared cache never hands one CPU another's binary. A build is written to a temporary file and
renamed (under a lock, so concurrent runs build it once), and the SHA-256 of the built file is recorded beside it
(`<name>.so.sha256`): a cached file is loaded only when it matches its record, so a truncated, damaged or foreign
file is never loaded (loading a truncated shared object can crash the process) but rebuilt. Without a working
compiler, or with a cache folder that cannot be written, the first soft-threshold training step on CPU fails with
`KernelUnavailable`, naming the fix; nothing silently computes other numbers.
"""

from __future__ import annotations

import ctypes
import functools
import hashlib
import os
import platform
import shlex
import shutil
import subprocess
import sysconfig
import tempfile
from pathlib import Path

from .. import paths
from ..locks import file_lock

SOURCE = Path(__file__).with_name("soft_threshold.c")
# -ffp-contract=off: no fused multiply-adds (the products are exact anyway; this keeps every build's arithmetic the
# source's). No -ffast-math: the summation order must stay the source's.
FLAGS = ["-O3", "-ffp-contract=off", "-fPIC", "-shared"]
TUNE = ["-march=native"]  # vector width only: the arithmetic and its order do not depend on it


class KernelUnavailable(RuntimeError):
    """The soft-threshold kernel could not be built or loaded on this machine."""


def compiler() -> list[str]:
    """The C compiler: $CC, else the one Python was built with, else `cc`."""
    return shlex.split(os.environ.get("CC") or sysconfig.get_config_var("CC") or "cc")


def _cpu_features() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            return next((line for line in f if line.startswith(("flags", "Features"))), "")
    except OSError:
        return platform.processor()


def _key(cc: list[str]) -> str:
    try:
        version = subprocess.run([*cc, "--version"], capture_output=True, text=True, timeout=60).stdout
    except (OSError, subprocess.SubprocessError) as e:
        raise KernelUnavailable(f"no C compiler at {' '.join(cc)!r} ({e}); {_FIX}") from None
    blob = "\0".join([SOURCE.read_text(), shutil.which(cc[0]) or cc[0], version, *FLAGS, *TUNE, platform.machine(),
                      _cpu_features()])
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


_FIX = ("AdapMTL and STR on CPU compute S(W) with a small C kernel (mtlprune/core/pruning/soft_threshold.c): install a C "
        "compiler (Debian: apt install gcc) or point $CC at one")


def _digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _record(target: Path) -> Path:
    return target.with_name(target.name + ".sha256")


def _verified(target: Path) -> bool:
    """Whether the cached file exists and matches the hash recorded when it was built."""
    try:
        return target.exists() and _record(target).read_text().strip() == _digest(target)
    except OSError:
        return False


def _write_atomic(target: Path, data: bytes) -> None:
    fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
        os.replace(tmp, target)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def _build(cc: list[str], target: Path) -> None:
    """Compile the kernel into `target` (atomically) and record its hash beside it."""
    fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=".tmp")
    os.close(fd)
    try:
        for tune in (TUNE, []):  # a compiler without -march=native still builds the same arithmetic
            try:
                done = subprocess.run([*cc, *FLAGS, *tune, "-o", tmp, str(SOURCE)], capture_output=True, text=True,
                                      timeout=300)
            except (OSError, subprocess.SubprocessError) as e:
                raise KernelUnavailable(f"cannot run the C compiler {' '.join(cc)!r} ({e}); {_FIX}") from None
            if done.returncode == 0:
                digest = _digest(Path(tmp))
                os.replace(tmp, target)  # atomic: a concurrent run sees no file or the whole file
                _write_atomic(_record(target), digest.encode())
                return
        raise KernelUnavailable(f"{' '.join(cc)} could not build {SOURCE.name}:\n{done.stderr.strip()[-2000:]}\n"
                                f"{_FIX}")
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


SYMBOLS = ("st_forward", "st_backward", "st_bracket")


def _open(target: Path) -> ctypes.CDLL:
    lib = ctypes.CDLL(str(target))
    for name in SYMBOLS:
        getattr(lib, name)  # AttributeError when the file is not this kernel
    return lib


def _load(cc: list[str], target: Path) -> ctypes.CDLL:
    """The built kernel: a cached file is loaded only when it matches its recorded hash; anything else (missing,
    truncated, foreign, unloadable) is rebuilt once under the lock; a failure after that names the fix."""
    unloadable = False
    if _verified(target):
        try:
            return _open(target)
        except (OSError, AttributeError):
            unloadable = True
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        with file_lock(target.parent / f".{target.name}.lock", str(target)):
            if unloadable or not _verified(target):  # another process may have built it while we waited
                target.unlink(missing_ok=True)
                _build(cc, target)
    except OSError as exc:
        raise KernelUnavailable(f"cannot write the kernel cache {target.parent} ({type(exc).__name__}: {exc}): make "
                                f"it writable, or point MTLPRUNE_NATIVE at a writable folder") from None
    try:
        return _open(target)
    except (OSError, AttributeError) as e:
        raise KernelUnavailable(f"cannot load {target} ({e}); {_FIX}") from None


@functools.lru_cache(maxsize=1)
def soft_threshold_kernel() -> ctypes.CDLL:
    """The loaded kernel (built first if this machine has none cached). Raises `KernelUnavailable` naming the fix."""
    cc = compiler()
    lib = _load(cc, paths.native_dir() / f"soft_threshold-{_key(cc)}.so")
    p, i64 = ctypes.c_void_p, ctypes.c_int64
    lib.st_forward.argtypes = [p, p, p, i64, p, i64, p]
    lib.st_forward.restype = None
    lib.st_backward.argtypes = [p, i64, p, p, p, i64, p, p, p]
    lib.st_backward.restype = None
    lib.st_bracket.argtypes = [p, p, p, p, i64, ctypes.c_float, ctypes.c_float, p, p, p]
    lib.st_bracket.restype = i64
    return lib
