"""One thread that ends blocked network reads at their deadline, for every peer.

A socket timeout bounds each `recv`, not the whole answer: a peer that sends one byte a second
never trips it, and the reading thread (and whatever lock it holds) stays forever. Callers
register what to do at the deadline (shut the connection down, which wakes the blocked read)
and cancel it once the exchange is over. One thread and a heap, not a timer thread per request:
a WinRM cycle over hundreds of nodes sends thousands of requests.
"""

from __future__ import annotations

import contextlib
import heapq
import itertools
import logging
import socket
import threading
import time
from collections.abc import Callable

log = logging.getLogger("certmon.watchdog")

_lock = threading.Condition()
_heap: list[tuple[float, int, Callable[[], None]]] = []
_cancelled: set[int] = set()
_ids = itertools.count(1)
_thread: threading.Thread | None = None


def watch(at: float, action: Callable[[], None]) -> int:
    """Run `action` at monotonic time `at` unless cancelled first; returns the handle for `cancel`."""
    global _thread  # noqa: PLW0603 - one watchdog thread per process, started on first use
    handle = next(_ids)
    with _lock:
        heapq.heappush(_heap, (at, handle, action))
        if _thread is None or not _thread.is_alive():
            _thread = threading.Thread(target=_run, name="certmon-watchdog", daemon=True)
            _thread.start()
        if _heap[0][1] == handle:
            _lock.notify()
    return handle


def cancel(handle: int) -> None:
    """The exchange ended in time: forget its action."""
    with _lock:
        _cancelled.add(handle)
        if len(_cancelled) > 4096:
            _compact()


def _compact() -> None:
    global _heap  # noqa: PLW0603 - rebuilt in place under the lock
    _heap = [entry for entry in _heap if entry[1] not in _cancelled]
    heapq.heapify(_heap)
    _cancelled.clear()


def _run() -> None:
    while True:
        with _lock:
            while _heap and _heap[0][1] in _cancelled:
                _cancelled.discard(heapq.heappop(_heap)[1])
            if not _heap:
                _lock.wait()
                continue
            at, _handle, action = _heap[0]
            wait = at - time.monotonic()
            if wait > 0:
                _lock.wait(wait)
                continue
            heapq.heappop(_heap)
        try:
            action()
        except Exception:  # a failing action must not stop the watchdog
            log.debug("watchdog action failed", exc_info=True)


def shut_down(sock: socket.socket | None) -> None:
    """Wake any thread blocked on `sock` (at the TCP level, also under TLS); the socket is unusable after."""
    if sock is None:
        return
    with contextlib.suppress(OSError):  # already closed or never connected
        socket.socket.shutdown(sock, socket.SHUT_RDWR)
