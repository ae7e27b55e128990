"""A stop that ends within its timeout, whatever a peer or a collection thread is doing.

Collections are bounded by their own deadlines, which can be longer than an operator (or
systemd's `TimeoutStopSec`) will wait; Python also waits at exit for every worker thread. The
daemon's stop runs in a helper thread; whatever is still running when the stop timeout is up is
named in the log, and the process exits without waiting for it. The state store writes whole
transactions and the audit log whole fsynced lines, so nothing recorded is lost by not waiting.
"""

from __future__ import annotations

import logging
import os
import sys
import threading
import time
from collections.abc import Callable

log = logging.getLogger("certmon.stop")


def stop_within(stop: Callable[[], None], seconds: float, exit_code: int = 0) -> None:
    """Run `stop`, then wait for worker threads, in at most `seconds`; past that, exit the process now."""
    ends = time.monotonic() + seconds
    helper = threading.Thread(target=_quietly, args=(stop,), name="certmon-stop", daemon=True)
    helper.start()
    helper.join(max(0.0, ends - time.monotonic()))
    pending = [] if not helper.is_alive() else [helper]
    if not pending:
        pending = _join_workers(ends)
    if not pending:
        return
    names = ", ".join(sorted({t.name for t in pending}))
    log.warning("stop timeout of %.0f s reached; exiting without waiting for: %s", seconds, names)
    logging.shutdown()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(exit_code)


def _join_workers(ends: float) -> list[threading.Thread]:
    """Wait, until `ends`, for what the interpreter would wait for at exit; the threads still running.

    That is every non-daemon thread, and every `concurrent.futures` worker, daemon or not (APScheduler's
    pool workers are daemon threads, yet the interpreter joins them at exit without a timeout). This
    sends the workers the same wake-up as the interpreter's exit hook, so idle ones end at once.
    """
    from concurrent.futures import thread as futures_thread

    queues = getattr(futures_thread, "_threads_queues", None)
    lock = getattr(futures_thread, "_global_shutdown_lock", None)
    workers: list[threading.Thread] = []
    if queues is not None and lock is not None:
        with lock:
            futures_thread._shutdown = True
        for worker, work_queue in list(queues.items()):
            work_queue.put(None)
            workers.append(worker)
    others = [
        t for t in threading.enumerate() if not t.daemon and t is not threading.main_thread() and t not in workers
    ]
    pending = []
    for thread in [*workers, *others]:
        thread.join(max(0.0, ends - time.monotonic()))
        if thread.is_alive():
            pending.append(thread)
    return pending


def _quietly(stop: Callable[[], None]) -> None:
    try:
        stop()
    except Exception:
        log.exception("stopping failed")
