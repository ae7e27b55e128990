"""A fixed mmap threshold for the long-running daemon on glibc, so freed large buffers leave memory.

glibc serves an allocation of 128 KiB or more with its own mapping and unmaps it when freed, but
each time such a block is freed it raises that threshold to the block's size (up to 32 MiB).
Once a 20 MiB WinRM answer has been freed, the next answers' pieces come from the heap of the
collecting thread's arena, and stay resident there after they are freed: with 50,000
certificates in one store, a later collection left 40 MiB more resident and the process peaked
at 310 MiB instead of 261 (`benchmarks/bench_scale.py --winrm`, with and without
`--glibc-default`). Setting the threshold explicitly turns that adjustment off. Elsewhere
(Windows, musl, macOS) this does nothing.
"""

from __future__ import annotations

import ctypes
import logging
import os
import sys

log = logging.getLogger("certmon.malloc")

# mallopt(3) parameter number (malloc.h) and glibc's default value for it.
M_MMAP_THRESHOLD = -3
MMAP_THRESHOLD = 128 * 1024


def fix_mmap_threshold() -> bool:
    """On glibc, fix the mmap threshold at its default (128 KiB); True when it was set."""
    if not sys.platform.startswith("linux"):
        return False
    try:
        if not os.confstr("CS_GNU_LIBC_VERSION"):
            return False
        libc = ctypes.CDLL(None)
        done = bool(libc.mallopt(M_MMAP_THRESHOLD, MMAP_THRESHOLD))
    except (AttributeError, OSError, ValueError):
        return False
    log.debug("glibc mmap threshold fixed at %d bytes: %s", MMAP_THRESHOLD, done)
    return done
