"""How the offline generators write a dataset: every sample rendered by an independent job (in worker processes when
there is more than one core), into a temporary folder renamed into place at the end, `meta.json` last. A dataset whose
`meta.json` exists is complete; a half-written one is discarded and written again."""

from __future__ import annotations

import json
import multiprocessing as mp
import os
import shutil
from pathlib import Path
from typing import Any, Callable

from tqdm import tqdm  # plain text bars: no widget output in executed notebooks


def write_dataset(root: Path, jobs: Callable[[Path], list[Any]], render_one: Callable[[Any], None],
                  meta: Callable[[Path], dict[str, Any]], unit: str, workers: int | None = None,
                  progress: bool = True) -> Path:
    """`jobs(tmp)` makes the folders and lists one job per sample; `render_one(job)` writes it (a job's bytes depend
    on nothing but the job, so the worker count never changes the dataset); `meta(tmp)` may write more files and
    returns meta.json's content. Returns `root`."""
    root = Path(root)
    if (root / "meta.json").exists():
        return root
    tmp = root.with_name(root.name + f".tmp-{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)
    try:
        todo = jobs(tmp)
        workers = workers or min(os.cpu_count() or 1, 8)
        bar = tqdm(total=len(todo), desc=f"generating {root.name}", unit=unit, disable=not progress)
        if workers > 1:
            with mp.get_context("fork").Pool(workers) as pool:
                for _ in pool.imap_unordered(render_one, todo, chunksize=16):
                    bar.update()
        else:
            for job in todo:
                render_one(job)
                bar.update()
        bar.close()
        (tmp / "meta.json").write_text(json.dumps(meta(tmp), indent=2))
        root.parent.mkdir(parents=True, exist_ok=True)
        shutil.rmtree(root, ignore_errors=True)  # a half-written folder without meta.json
        tmp.rename(root)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)  # nothing half-written stays behind (gone after the rename)
    return root


def regenerate_fix(root: Path, command: str) -> str:
    """The fix for a damaged generated dataset: `write_dataset` is a no-op once meta.json exists, so remove it."""
    return (f"This is a generated dataset: delete it and it is written again (deterministically) on the next run or "
            f"`{command}`: rm -r '{root}'")
