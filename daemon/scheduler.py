"""Scheduling with APScheduler 3.x: one interval job per source, jittered, never overlapping.

APScheduler 3 schedules on wall time: a ClockWatch (daemon/clockwatch.py) notices wall-clock
steps and moves every job's next run to now, so a backward step does not stall collection.
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING

from apscheduler.executors.pool import ThreadPoolExecutor
from apscheduler.schedulers.background import BackgroundScheduler
from apscheduler.triggers.interval import IntervalTrigger

from daemon.clockwatch import ClockWatch
from daemon.sources.registry import jitter

if TYPE_CHECKING:
    from daemon.view import RunningDaemon as Daemon

log = logging.getLogger("certmon.scheduler")


class Scheduler:
    """Runs each source's cycle on its own interval."""

    def __init__(self, daemon: Daemon) -> None:
        self.daemon = daemon
        workers = max(2, len(daemon.collectors))
        self._scheduler = BackgroundScheduler(
            executors={"default": ThreadPoolExecutor(max_workers=workers)},
            job_defaults={"max_instances": 1, "coalesce": True, "misfire_grace_time": None},
            timezone="UTC",
        )
        self.clock_watch = ClockWatch(self.reschedule_now)

    @property
    def running(self) -> bool:
        """True while the scheduler runs."""
        return bool(self._scheduler.running)

    def start(self) -> None:
        """Add one job per source, first run now, and start."""
        now = datetime.now(UTC)
        for index, (name, collector) in enumerate(self.daemon.collectors.items()):
            self._scheduler.add_job(
                self.daemon.collect_source,
                IntervalTrigger(seconds=collector.interval, jitter=jitter(self.daemon.settings, name) or None),
                args=[name],
                id=f"collect-{name}",
                name=f"collect {name}",
                # Stagger the first runs slightly so sources do not all start in the same instant.
                next_run_time=now + timedelta(milliseconds=50 * index),
            )
        self._scheduler.start()
        self.clock_watch.start()
        log.info("scheduled %d sources", len(self.daemon.collectors))

    def reschedule_now(self, step: float = 0.0) -> None:
        """Every source's next run now (staggered as at start): after a wall-clock step."""
        now = datetime.now(UTC)
        for index, job in enumerate(self._scheduler.get_jobs()):
            job.modify(next_run_time=now + timedelta(milliseconds=50 * index))

    def stop(self) -> None:
        """Stop without waiting for running cycles (each is bounded by its own deadline)."""
        self.clock_watch.stop()
        if self._scheduler.running:
            self._scheduler.shutdown(wait=False)
