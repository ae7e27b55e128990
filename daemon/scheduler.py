"""Scheduling with APScheduler 3.x: one interval job per source, jittered, never overlapping."""

from __future__ import annotations

import logging
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING

from apscheduler.executors.pool import ThreadPoolExecutor
from apscheduler.schedulers.background import BackgroundScheduler
from apscheduler.triggers.interval import IntervalTrigger

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
        log.info("scheduled %d sources", len(self.daemon.collectors))

    def stop(self) -> None:
        """Stop without waiting for running cycles (each is bounded by its own deadline)."""
        if self._scheduler.running:
            self._scheduler.shutdown(wait=False)
