"""Reading many small report files on every core: MIMIC-CXR keeps one file per study.

At 227,827 studies opening, decoding and cutting each report into its sections takes about
20 s on one core; the work is per file and independent, so a large corpus is read by a
pool of processes (chunks of paths in, texts out, in order). A pool of threads would not
help: the section parsing holds the GIL. Small corpora stay in this process (a pool's start
costs more than it saves), and so does any process that cannot start one.
"""

from __future__ import annotations

import logging
import multiprocessing
import os
from collections.abc import Callable, Sequence
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool

log = logging.getLogger(__name__)

PARALLEL_MIN_FILES = 20_000  # below this one process is faster than starting a pool
CHUNK_FILES = 4_096


def usable_cpus() -> int:
    """CPUs this process may run on (its affinity mask; os.cpu_count() where there is none)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # macOS
        return os.cpu_count() or 1


def map_files(read_one: Callable[[str], str], paths: Sequence[str], *, max_workers: int | None = None) -> list[str]:
    """`[read_one(p) for p in paths]`, on a process pool when there are many paths and cores.

    `read_one` must pickle (a module-level function, or a partial of one). The pool forks:
    "spawn" and "forkserver" re-run the caller's main script, which breaks any script without
    an `if __name__ == "__main__"` guard. The children only open, decode and parse files
    (no thread pool, lock or connection of the parent is used there), and glibc's malloc is
    fork-safe. Where a pool cannot start or breaks, the files are read in this process
    instead. A report never leaves the machine: the pool is local.
    """
    workers = min(max_workers or usable_cpus(), 8)
    if len(paths) < PARALLEL_MIN_FILES or workers < 2 or "fork" not in multiprocessing.get_all_start_methods():
        return [read_one(p) for p in paths]
    chunks = [list(paths[i : i + CHUNK_FILES]) for i in range(0, len(paths), CHUNK_FILES)]
    try:
        with ProcessPoolExecutor(max_workers=workers, mp_context=multiprocessing.get_context("fork")) as pool:
            return [text for texts in pool.map(_read_chunk, [read_one] * len(chunks), chunks) for text in texts]
    except (BrokenProcessPool, OSError) as exc:
        log.warning("reading %d report files in one process (the process pool failed: %s)", len(paths),
                    type(exc).__name__)
        return [read_one(p) for p in paths]


def _read_chunk(read_one: Callable[[str], str], paths: list[str]) -> list[str]:
    return [read_one(p) for p in paths]
