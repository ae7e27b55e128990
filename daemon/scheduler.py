"""Scheduling on monotonic time: one loop per source, jittered, never overlapping, missed runs coalesced.

APScheduler 3 computes every next run in wall-clock time, so a backward step of the system
clock (an NTP correction, a VM restored from a snapshot, a wrong time fixed by hand) stalled
every source for as long as the step. Here each source's loop waits on an event with a
timeout, which Python measures on the monotonic clock: a change of the wall clock moves
nothing. A cycle that overruns its interval is followed by the next one at once, never by a
burst of the missed ones.
"""

from __future__ import annotations

import logging
import random
import threading
import time
from collections.abc import Callable
from typing import TYPE_CHECKING

from daemon.sources import jitter

if TYPE_CHECKING:
    from daemon.app import Daemon

log = logging.getLogger("certmon.scheduler")

#: the first runs are staggered by this much per source, so sources do not all start in the same instant
STAGGER_SECONDS = 0.05


class Scheduler:
    """Runs each source's cycle on its own interval."""

    def __init__(self, daemon: Daemon, monotonic: Callable[[], float] = time.monotonic) -> None:
        self.daemon = daemon
        self._monotonic = monotonic
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []

    @property
    def running(self) -> bool:
        """True while the scheduler runs."""
        return bool(self._threads) and not self._stop.is_set()

    def start(self) -> None:
        """Start one loop per source, first run now."""
        for index, (name, collector) in enumerate(self.daemon.collectors.items()):
            spread = jitter(self.daemon.settings, name)
            thread = threading.Thread(
                target=self._loop,
                args=(name, float(collector.interval), spread, STAGGER_SECONDS * index),
                name=f"schedule-{name}",
                daemon=True,
            )
            self._threads.append(thread)
            thread.start()
        log.info("scheduled %d sources", len(self.daemon.collectors))

    def _loop(self, name: str, interval: float, spread: float, first_delay: float) -> None:
        planned = self._monotonic() + first_delay
        fire_at = planned
        while not self._stop.wait(max(0.0, fire_at - self._monotonic())):
            try:
                self.daemon.collect_source(name)
            except Exception:
                # A cycle never raises by design; if one does, the schedule must survive it.
                log.exception("collection cycle of %s failed", name)
            # Keep the cadence (no drift), but never catch up on runs a long cycle missed.
            planned = max(planned + interval, self._monotonic())
            fire_at = planned + (random.uniform(0, spread) if spread > 0 else 0.0)  # noqa: S311 - not crypto

    def stop(self) -> None:
        """Stop without waiting for running cycles (each is bounded by its own deadline)."""
        self._stop.set()
