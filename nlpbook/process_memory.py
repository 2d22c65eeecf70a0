"""Memory housekeeping a training run does in its own process, for the run's duration only.

Two things cost a CPU run time without computing anything. Python's cyclic garbage collector walks
the half-million objects that torch, transformers and Lightning made before the run. And glibc's
malloc hands large freed blocks straight back to the kernel, so every training step maps the same
blocks again (a gradient for kcbert-base's 30,000 x 768 embedding is 92 MB) and faults their pages
in one by one. Both are undone when the run ends.
"""

from __future__ import annotations

import contextlib
import ctypes
import gc
import os
import sys
import threading
from collections.abc import Iterator
from typing import Any

__all__ = ["old_objects_frozen", "freed_memory_kept"]

# mallopt(3) parameters
M_TRIM_THRESHOLD = -1
M_MMAP_THRESHOLD = -3
# During a run: blocks up to 1 GiB come from the heap, and freed memory stays there for reuse.
RUN_MMAP_THRESHOLD = 1 << 30
RUN_TRIM_THRESHOLD = (1 << 31) - 1  # mallopt takes an int
# After it: the most glibc's own adaptive thresholds grow to on 64-bit. Setting any threshold turns
# the adaptation off for good, so these stand in for it.
GLIBC_MMAP_THRESHOLD_MAX = 32 << 20
GLIBC_TRIM_THRESHOLD_AFTER = 2 * GLIBC_MMAP_THRESHOLD_MAX
# A user who tunes malloc through the environment keeps their own settings.
MALLOC_ENVIRONMENT = ("MALLOC_MMAP_THRESHOLD_", "MALLOC_TRIM_THRESHOLD_", "MALLOC_TOP_PAD_", "GLIBC_TUNABLES")
# How many freed_memory_kept contexts are open (nested, or in serving threads): the first one in sets
# the thresholds and the last one out restores them, so one ending never undoes another still running.
_open_contexts = 0
_open_contexts_lock = threading.Lock()


@contextlib.contextmanager
def old_objects_frozen() -> Iterator[None]:
    """Python's cyclic garbage collector leaves the objects that exist before the run alone.

    Reading a corpus makes tens of thousands of objects, and that triggers full collections that walk
    every older one too. In a 3,200-row NSMC run that took 0.5 s, and reading both NSMC files took
    1.3 s instead of 0.45 s. Frozen objects are only skipped by the collector, not kept alive by it:
    the freeze ends with the run. A program that froze objects itself is left as it is.
    """
    if gc.get_freeze_count():
        yield
        return
    gc.freeze()
    try:
        yield
    finally:
        gc.unfreeze()


def _glibc() -> Any | None:
    """The process's C library if it is glibc (Linux, Colab); None elsewhere (macOS, Windows, musl)."""
    if not sys.platform.startswith("linux"):
        return None
    try:
        libc = ctypes.CDLL(None)
        libc.gnu_get_libc_version  # noqa: B018 - glibc only
        libc.mallopt, libc.malloc_trim  # noqa: B018
    except (OSError, AttributeError):
        return None
    return libc


@contextlib.contextmanager
def freed_memory_kept() -> Iterator[None]:
    """glibc's malloc keeps freed memory for the next step instead of returning it to the kernel.

    Without this, every block over glibc's mmap threshold (at most 32 MiB) is mapped afresh on each
    step and its pages fault in again: about 79,000 page faults per kcbert-base training step here
    against 1,400 with this, which made the step 1.04x faster (``benchmarks/cpu_step_ab.py``). When
    the run ends the freed memory is handed back (``malloc_trim``) and the thresholds are set to the
    values glibc's adaptive ones grow to. Elsewhere than glibc, or where the environment sets
    malloc's own variables, nothing changes. Contexts may nest or overlap across threads: the
    thresholds stay raised until the last one ends.
    """
    global _open_contexts
    libc = _glibc()
    if libc is None or any(name in os.environ for name in MALLOC_ENVIRONMENT):
        yield
        return
    with _open_contexts_lock:
        if _open_contexts == 0:
            libc.mallopt(M_MMAP_THRESHOLD, RUN_MMAP_THRESHOLD)
            libc.mallopt(M_TRIM_THRESHOLD, RUN_TRIM_THRESHOLD)
        _open_contexts += 1
    try:
        yield
    finally:
        with _open_contexts_lock:
            _open_contexts -= 1
            if _open_contexts == 0:
                libc.mallopt(M_MMAP_THRESHOLD, GLIBC_MMAP_THRESHOLD_MAX)
                libc.mallopt(M_TRIM_THRESHOLD, GLIBC_TRIM_THRESHOLD_AFTER)
                libc.malloc_trim(0)
