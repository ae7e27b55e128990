"""The glibc allocator settings `certmon run` makes (daemon/malloctune.py), observed in a fresh process.

What they change is read back from glibc itself: mallinfo2() counts the blocks served by their own
mapping, malloc_info() lists the arenas. Their effect on memory is measured by benchmarks/soak.py
and bench_scale.py (`--glibc-default` to compare).
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from daemon.malloctune import tune_malloc

ROOT = Path(__file__).resolve().parents[2]


def _glibc() -> bool:
    try:
        return sys.platform.startswith("linux") and bool(os.confstr("CS_GNU_LIBC_VERSION"))
    except (ValueError, OSError):
        return False


def test_it_reports_what_it_did_and_is_harmless_twice() -> None:
    assert tune_malloc() is _glibc()
    assert tune_malloc() is _glibc()


# In a fresh interpreter: free a 20 MiB block (glibc then raises an adjusting threshold to 20 MiB),
# allocate 1 MiB blocks and count those glibc mapped on their own; then let 8 threads allocate at
# once and count the arenas malloc_info() reports.
_PROBE = textwrap.dedent(
    """
    import ctypes, re, sys, tempfile, threading
    from daemon.malloctune import tune_malloc

    class MallInfo2(ctypes.Structure):
        _fields_ = [(name, ctypes.c_size_t) for name in
                    ("arena", "ordblks", "smblks", "hblks", "hblkhd", "usmblks", "fsmblks",
                     "uordblks", "fordblks", "keepcost")]

    libc = ctypes.CDLL(None)
    libc.mallinfo2.restype = MallInfo2
    libc.malloc.restype = ctypes.c_void_p
    libc.free.argtypes = [ctypes.c_void_p]
    libc.fopen.restype = ctypes.c_void_p
    libc.fopen.argtypes = [ctypes.c_char_p, ctypes.c_char_p]
    libc.malloc_info.argtypes = [ctypes.c_int, ctypes.c_void_p]
    libc.fclose.argtypes = [ctypes.c_void_p]
    if sys.argv[1] == "tuned":
        assert tune_malloc()

    libc.free(libc.malloc(20 << 20))
    before = libc.mallinfo2().hblks
    blocks = [libc.malloc(1 << 20) for _ in range(4)]
    mapped = libc.mallinfo2().hblks - before
    for block in blocks:
        libc.free(block)

    start = threading.Barrier(8)
    done = threading.Barrier(9)
    def work():
        start.wait()
        kept = [libc.malloc(200) for _ in range(1000)]
        done.wait()
        for block in kept:
            libc.free(block)
    threads = [threading.Thread(target=work) for _ in range(8)]
    for thread in threads:
        thread.start()
    done.wait()
    with tempfile.NamedTemporaryFile(suffix=".xml") as out:
        stream = libc.fopen(out.name.encode(), b"w")
        libc.malloc_info(0, stream)
        libc.fclose(stream)
        arenas = len(re.findall(r'<heap nr="', open(out.name).read()))
    for thread in threads:
        thread.join()
    print(mapped, arenas)
    """
)


def _probe(mode: str) -> tuple[int, int]:
    done = subprocess.run(
        [sys.executable, "-c", _PROBE, mode],
        capture_output=True,
        text=True,
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        timeout=120,
        check=True,
    )
    mapped, arenas = done.stdout.split()
    return int(mapped), int(arenas)


@pytest.mark.skipif(not _glibc(), reason="glibc's allocator only")
def test_freed_large_blocks_no_longer_raise_the_threshold_and_threads_share_two_arenas() -> None:
    default_mapped, default_arenas = _probe("default")
    tuned_mapped, tuned_arenas = _probe("tuned")
    # glibc's default: after the 20 MiB block, 1 MiB blocks come from the heap; and one arena per thread.
    assert default_mapped == 0, (default_mapped, default_arenas)
    assert default_arenas > 2, (default_mapped, default_arenas)
    # certmon's: each 1 MiB block its own mapping (returned when freed); at most two arenas.
    assert tuned_mapped == 4, (tuned_mapped, tuned_arenas)
    assert tuned_arenas <= 2, (tuned_mapped, tuned_arenas)
