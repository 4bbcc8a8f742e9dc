"""An exclusive file lock (flock) so two processes never write the same run or dataset; the second one waits."""

from __future__ import annotations

import fcntl
import shutil
import sys
from contextlib import contextmanager
from pathlib import Path
from typing import Callable, Iterator


@contextmanager
def file_lock(path: Path, what: str) -> Iterator[None]:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w") as fh:
        try:
            fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            print(f"waiting for another process that is writing {what} ...", file=sys.stderr, flush=True)
            fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def make_once(root: Path, make: Callable[[Path], object]) -> Path:
    """`make(root)` unless `root/meta.json` (written last by every generator) exists; under a lock, so concurrent
    processes generate a dataset once (the generators return at once if another process just finished it)."""
    if not (root / "meta.json").exists():
        with file_lock(root.parent / f".{root.name}.lock", str(root)):
            # under the lock no generator of this root is alive: temporary folders left by a killed one are stale
            for stale in root.parent.glob(f"{root.name}.tmp*"):
                shutil.rmtree(stale, ignore_errors=True)
            make(root)
    return root
