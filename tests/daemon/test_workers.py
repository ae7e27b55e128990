"""The runner's collection threads (daemon/workers.py): reused between jobs, never queued behind a hung one."""

from __future__ import annotations

import queue
import threading

from daemon.workers import Workers


def run_jobs(workers: Workers, count: int) -> list[str]:
    """Submit `count` jobs one after the other, each after the previous one finished; the thread names seen."""
    done: queue.SimpleQueue[str] = queue.SimpleQueue()
    names = []
    for i in range(count):
        seen: list[str] = []
        workers.submit(lambda seen=seen: seen.append(threading.current_thread().name), f"job-{i}", lambda: done.put(""))
        done.get(timeout=10)
        names.append(seen[0])
    return names


def test_a_finished_job_leaves_its_thread_free_for_the_next() -> None:
    workers = Workers(prefix="test-reuse")
    try:
        names = run_jobs(workers, 20)
        assert names == [f"job-{i}" for i in range(20)]  # each job ran under its own name
        assert workers.started == 1 and workers.threads == 1
    finally:
        workers.close()


def test_a_hung_job_keeps_its_thread_and_the_others_go_on() -> None:
    workers = Workers(prefix="test-hung")
    release = threading.Event()
    try:
        workers.submit(lambda: release.wait(10) and None, "hung", lambda: None)
        run_jobs(workers, 5)
        assert workers.started == 2 and workers.threads == 2
    finally:
        release.set()
        workers.close()


def test_idle_threads_leave_after_the_idle_timeout() -> None:
    workers = Workers(prefix="test-idle", idle_timeout=0.05)
    run_jobs(workers, 1)
    assert workers.wait_gone(10)
    run_jobs(workers, 1)  # a new thread when none is left
    assert workers.started == 2
    workers.close()


def test_closing_lets_idle_threads_leave_and_later_jobs_still_run() -> None:
    workers = Workers(prefix="test-close")
    run_jobs(workers, 3)
    workers.close()
    assert workers.wait_gone(10)
    assert run_jobs(workers, 2) == ["job-0", "job-1"]  # each on a thread of its own after close
