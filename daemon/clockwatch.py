"""Wall-clock steps: notice them and put the schedule back on time (APScheduler 3 schedules on wall time).

APScheduler 3 keeps each job's next run as a wall-clock datetime and sleeps until then. When the
wall clock steps backwards (an NTP correction, a VM restored from a snapshot, an operator fixing
the time), every next run moves that far into the future: a one-hour step stalled all
collection for an hour. A step forwards is milder (coalesced missed runs fire at once), but the
schedule is still off its cadence.

`ClockWatch` runs its own thread that waits on the monotonic clock (threading.Event.wait) and,
every `period` seconds, compares how far the wall clock moved with how far the monotonic clock
moved. A difference of more than `tolerance` seconds is a step: it calls `on_step` (the scheduler
moves every job's next run to now, staggered), logs one line and counts it by direction for
`certmon_clock_steps_total`.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable

from prometheus_client.core import CounterMetricFamily, Metric

log = logging.getLogger("certmon.scheduler")

#: how often the clocks are compared, seconds (monotonic)
CHECK_PERIOD = 1.0
#: a wall-clock move this much larger or smaller than the monotonic one is a step, seconds
STEP_TOLERANCE = 5.0
DIRECTIONS = ("backward", "forward")


class ClockWatch:
    """A thread that notices wall-clock steps and asks for the schedule to be put back on time."""

    def __init__(
        self,
        on_step: Callable[[float], None],
        *,
        period: float = CHECK_PERIOD,
        tolerance: float = STEP_TOLERANCE,
    ) -> None:
        self._on_step = on_step
        self._period = period
        self._tolerance = tolerance
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()
        self._steps = dict.fromkeys(DIRECTIONS, 0)

    def start(self) -> None:
        """Start watching (once)."""
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, name="certmon-clockwatch", daemon=True)
            self._thread.start()

    def stop(self) -> None:
        """Stop watching; returns at once (the thread ends within one period)."""
        self._stop.set()

    def steps(self) -> dict[str, int]:
        """Steps seen so far, by direction."""
        with self._lock:
            return dict(self._steps)

    def check(self, wall_moved: float, monotonic_moved: float) -> float:
        """Compare one interval's moves; on a step, count it and call `on_step`. Returns the step, seconds."""
        step = wall_moved - monotonic_moved
        if abs(step) <= self._tolerance:
            return 0.0
        direction = "backward" if step < 0 else "forward"
        with self._lock:
            self._steps[direction] += 1
        log.warning(
            "the wall clock stepped %s by %.0f s (NTP, a restored snapshot or a manual change): "
            "every source's next collection moved to now",
            direction,
            abs(step),
        )
        try:
            self._on_step(step)
        except Exception:  # the watch must outlive a failed reschedule; the next step tries again
            log.exception("rescheduling after a clock step failed")
        return step

    def _run(self) -> None:
        wall, mono = time.time(), time.monotonic()
        while not self._stop.wait(self._period):
            now_wall, now_mono = time.time(), time.monotonic()
            self.check(now_wall - wall, now_mono - mono)
            wall, mono = now_wall, now_mono


def clock_families(environment: str, steps: dict[str, int]) -> list[Metric]:
    """certmon_clock_steps_total by direction."""
    family = CounterMetricFamily(
        "certmon_clock_steps",
        "Wall-clock steps noticed (the monotonic clock moved differently by more than "
        f"{STEP_TOLERANCE:.0f} s), after which every source's schedule was put back on time.",
        labels=["environment", "direction"],
    )
    for direction in DIRECTIONS:
        family.add_metric([environment, direction], float(steps.get(direction, 0)))
    return [family]
