"""Threads that run collection attempts, kept from one cycle to the next.

A new thread per target per cycle cost the runner about 0.2 ms of CPU per target (start, the
handshake of `Thread.start`, the stack given back to the kernel at the end), on top of waiting on
every running future at each completion. Here a thread that finished an attempt waits for the
next one, and leaves after `idle_timeout` seconds without work.

Unlike a fixed-size executor, an attempt is never queued behind a busy thread: when no thread is
idle, a new one starts. An attempt that overran its deadline keeps its thread (it cannot be
interrupted) and the others go on, as they did with one thread per attempt.
"""

from __future__ import annotations

import logging
import queue
import threading
from collections.abc import Callable

log = logging.getLogger("certmon.runner")

Job = Callable[[], None]
#: what a job's submitter does once the thread is idle again (reports the job's result)
Finish = Callable[[], None]
DEFAULT_IDLE_TIMEOUT = 900.0


class Workers:
    """A growing set of daemon threads that run jobs; idle ones are reused, long-idle ones leave."""

    def __init__(self, prefix: str = "collect", idle_timeout: float = DEFAULT_IDLE_TIMEOUT) -> None:
        self.prefix = prefix
        self.idle_timeout = idle_timeout
        self._jobs: queue.SimpleQueue[tuple[Job, str, Finish] | None] = queue.SimpleQueue()
        # One permit per idle thread that no submitted job has claimed yet.
        self._idle = threading.Semaphore(0)
        self._lock = threading.Lock()
        # Notified whenever a thread leaves (see wait_gone).
        self._left = threading.Condition(self._lock)
        self._count = 0
        self._started = 0
        self._closed = False

    def submit(self, job: Job, name: str, finish: Finish) -> None:
        """Run `job` on an idle thread, or on a new one when none is idle; `name` names the thread meanwhile.

        `finish` runs after the job, once the thread counts as idle: whoever waits for the result and
        submits the next job right away then finds this thread free instead of starting another.
        """
        if self._closed:  # after close: one thread for this job alone, as before there were workers

            def alone() -> None:
                job()
                finish()

            threading.Thread(target=alone, name=name, daemon=True).start()
            return
        self._jobs.put((job, name, finish))
        if self._idle.acquire(blocking=False):
            return
        with self._lock:
            self._count += 1
            self._started += 1
            number = self._started
        threading.Thread(target=self._run, name=f"{self.prefix}-{number}", daemon=True).start()

    @property
    def threads(self) -> int:
        """Threads alive now, busy or idle."""
        with self._lock:
            return self._count

    @property
    def started(self) -> int:
        """Threads started so far."""
        with self._lock:
            return self._started

    def wait_gone(self, timeout: float) -> bool:
        """Wait until no thread is left (woken as each one leaves), at most `timeout` seconds; True when none is."""
        with self._left:
            return self._left.wait_for(lambda: self._count == 0, timeout)

    def close(self) -> None:
        """Idle threads leave now, busy ones after their job; no new job is taken."""
        self._closed = True
        with self._lock:
            count = self._count
        for _ in range(count):
            self._jobs.put(None)

    def _run(self) -> None:
        thread = threading.current_thread()
        idle_name = thread.name
        try:
            while True:
                try:
                    item = self._jobs.get(timeout=self.idle_timeout)
                except queue.Empty:
                    if self._idle.acquire(blocking=False):
                        return  # no job claimed this thread: leave
                    continue  # a job was submitted for this thread just now: take it
                if item is None:
                    return
                job, name, finish = item
                thread.name = name
                try:
                    job()
                except Exception:  # a job handles its own errors; this only keeps the thread alive
                    log.exception("a collection job failed outside its own error handling")
                finally:
                    thread.name = idle_name
                if self._closed:
                    finish()
                    return
                self._idle.release()
                finish()
        finally:
            with self._left:
                self._count -= 1
                self._left.notify_all()
