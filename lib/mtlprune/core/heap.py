"""The C heap's handling of freed memory during training (glibc), and nothing else.

glibc serves blocks above its mmap threshold with fresh mappings and returns heap memory above its trim threshold to
the OS when freed, so a training step whose buffers are a few MB (AdapMTL's flat weight buffer and its gradient: 3 MB
each on the quick model) takes hundreds of minor page faults every step, each zero-filling a page (≈ 700 per AdapMTL
step here, none for dense). Raising both thresholds keeps freed memory in the heap for the next step: the same
arithmetic, no faults, memory held at the run's peak. Elsewhere (no glibc) nothing changes.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import functools

M_TRIM_THRESHOLD, M_MMAP_THRESHOLD = -1, -3  # glibc's mallopt parameters (malloc.h)
MMAP_THRESHOLD_MAX = 32 << 20  # glibc's ceiling on 64-bit
TRIM_THRESHOLD = 1 << 30


@functools.lru_cache(maxsize=1)
def keep_freed_memory() -> bool:
    """Once per process: keep freed blocks of up to 32 MB for reuse instead of unmapping or trimming them. True when
    glibc took both settings."""
    try:
        mallopt = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6").mallopt
    except (OSError, AttributeError):  # not glibc: its allocator is left as it is
        return False
    return bool(mallopt(M_MMAP_THRESHOLD, MMAP_THRESHOLD_MAX)) and bool(mallopt(M_TRIM_THRESHOLD, TRIM_THRESHOLD))
