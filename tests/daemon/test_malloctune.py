"""The glibc mmap threshold `certmon run` fixes (daemon/malloctune.py); its effect is measured by bench_scale.py."""

from __future__ import annotations

import os
import sys

from daemon.malloctune import fix_mmap_threshold


def _glibc() -> bool:
    try:
        return sys.platform.startswith("linux") and bool(os.confstr("CS_GNU_LIBC_VERSION"))
    except (ValueError, OSError):
        return False


def test_the_threshold_is_fixed_on_glibc_and_left_alone_elsewhere() -> None:
    assert fix_mmap_threshold() is _glibc()
    assert fix_mmap_threshold() is _glibc()  # again: harmless
