"""glibc allocator settings for the long-running daemon, so that freed memory leaves the process.

Two of glibc's defaults let a Python daemon that reads large answers on worker threads grow:

* **The adjusting mmap threshold.** glibc serves an allocation of 128 KiB or more with its own
  mapping and unmaps it when freed, but each time such a block is freed it raises that threshold
  to the block's size (up to 32 MiB). Once a 20 MiB WinRM answer has been freed, the next answers'
  pieces come from the heap of the collecting thread's arena, and stay resident there after they
  are freed: with 50,000 certificates in one store, a later collection left 40 MiB more resident
  and the process peaked at 310 MiB instead of 261 (`benchmarks/bench_scale.py --winrm`, with and
  without `--glibc-default`). Setting the threshold explicitly turns that adjustment off.
* **One arena per thread, up to eight per core.** Each WinRM node is read on a worker thread; the
  threads' arenas each keep their own free pieces, and the soak's RSS kept rising by about
  0.25 MiB per 100 cycles after warming up (`benchmarks/soak.py --glibc-default`). Two arenas stop
  that (Python holds the GIL around almost every allocation, so threads seldom wait for one).

Elsewhere (Windows, musl, macOS) this does nothing.
"""

from __future__ import annotations

import ctypes
import logging
import os
import sys

log = logging.getLogger("certmon.malloc")

# mallopt(3) parameter numbers (malloc.h) and the values certmon sets.
M_MMAP_THRESHOLD = -3
M_ARENA_MAX = -8
MMAP_THRESHOLD = 128 * 1024  # glibc's own starting value, now fixed
ARENA_MAX = 2


def tune_malloc() -> bool:
    """On glibc, fix the mmap threshold at 128 KiB and allow two arenas; True when both were set."""
    if not sys.platform.startswith("linux"):
        return False
    try:
        if not os.confstr("CS_GNU_LIBC_VERSION"):
            return False
        libc = ctypes.CDLL(None)
        done = bool(libc.mallopt(M_MMAP_THRESHOLD, MMAP_THRESHOLD)) and bool(libc.mallopt(M_ARENA_MAX, ARENA_MAX))
    except (AttributeError, OSError, ValueError):
        return False
    log.debug("glibc mmap threshold %d bytes, at most %d arenas: %s", MMAP_THRESHOLD, ARENA_MAX, done)
    return done
