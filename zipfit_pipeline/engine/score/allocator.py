"""Keep freed heap memory in scoring processes instead of handing it back to the OS after every compression.

Each `zlib.compress` call allocates about 256 KB and frees it. With glibc's default trim threshold that memory
returns to the OS at once and is page-faulted back on the next call, so the same Python loop ran at 18k or 50k
pairs/s depending on the heap's state. Raising the trim threshold (the `MALLOC_TRIM_THRESHOLD_` of glibc's
environment, set in code) keeps it; `bench/scoring.py --only per-pair` measures a plain loop with and without.
"""

from __future__ import annotations

import ctypes
from functools import cache

M_TRIM_THRESHOLD, M_TOP_PAD = -1, -2  # glibc's malloc.h
KEEP_BYTES = 64 * 1024 * 1024
TOP_PAD_BYTES = 1024 * 1024


@cache
def keep_freed_memory() -> bool:
    """Tune this process's allocator, once (glibc only); False where there is no `mallopt`."""
    mallopt = getattr(ctypes.CDLL(None), "mallopt", None)  # the C library this interpreter runs on
    if mallopt is None:
        return False
    return bool(mallopt(M_TRIM_THRESHOLD, KEEP_BYTES)) and bool(mallopt(M_TOP_PAD, TOP_PAD_BYTES))
