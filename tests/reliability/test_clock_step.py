"""A wall-clock step does not stall collection: APScheduler stays, a clock watch puts the schedule back on time.

time-machine moves the wall clock of this process (datetime.now, time.time) and leaves the
monotonic clock alone, as an NTP correction or a VM restored from a snapshot does; the
machine's own clock is never touched. Without the watch, APScheduler 3 (which sleeps until a
wall-clock next run) waits out the whole hour after a backward step.
"""

from __future__ import annotations

import threading
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import time_machine

from collectors.base import Collector, Deadline
from collectors.model import Observation
from daemon.app import Daemon
from daemon.clockwatch import ClockWatch
from daemon.settings import Settings


class CountingSource(Collector):
    """A source that only counts its cycles, and lets a test wait for the next ones."""

    name = "counting"

    def __init__(self) -> None:
        super().__init__(timeout=5, interval=0.2)
        self.cycles = 0
        self._changed = threading.Condition()

    def targets(self) -> tuple[str, ...]:
        return ("here",)

    def collect(self, target: str, deadline: Deadline) -> Observation:
        with self._changed:
            self.cycles += 1
            self._changed.notify_all()
        return Observation()

    def wait_for(self, cycles: int, timeout: float) -> bool:
        """Block until `cycles` cycles have run, at most `timeout` seconds."""
        with self._changed:
            return self._changed.wait_for(lambda: self.cycles >= cycles, timeout)


def _steps_metric(daemon: Daemon) -> dict[str, float]:
    daemon.publish()
    family = next(f for f in daemon.view.families if f.name == "certmon_clock_steps")
    return {s.labels["direction"]: s.value for s in family.samples}


def test_wall_clock_steps_of_an_hour_do_not_stall_collection(lab_settings: Settings, tmp_path: Path) -> None:
    source = CountingSource()
    settings = lab_settings.model_copy(update={"data_dir": tmp_path / "data"})
    with time_machine.travel(datetime.now(UTC), tick=True) as traveller:
        daemon = Daemon(settings, collectors=[source])
        daemon.start(serve=False)
        try:
            assert source.wait_for(2, timeout=60), "the source never ran on its interval"
            before = datetime.now(UTC)
            traveller.shift(timedelta(hours=-1))
            assert datetime.now(UTC) < before - timedelta(minutes=59)  # the step really happened
            done = source.cycles
            # At 0.2 s per cycle, three more cycles take about a second (plus the watch's check period);
            # without the watch the next run is an hour away.
            assert source.wait_for(done + 3, timeout=60), f"collection stalled after the clock step ({source.cycles})"
            assert _steps_metric(daemon)["backward"] == 1
            traveller.shift(timedelta(hours=2))  # and forwards: back on the cadence, counted
            done = source.cycles
            assert source.wait_for(done + 3, timeout=60)
            # A forward step does not stall APScheduler (missed runs fire at once), so collection can resume
            # before the watch's next check has counted the step: wait for the count, not for the cycles.
            ends = time.monotonic() + 60
            while (steps := _steps_metric(daemon))["forward"] < 1 and time.monotonic() < ends:
                time.sleep(0.1)
            assert steps == {"backward": 1, "forward": 1}, steps
        finally:
            daemon.stop()


def test_the_watch_tells_steps_from_drift() -> None:
    steps: list[float] = []
    watch = ClockWatch(steps.append, tolerance=5.0)
    assert watch.check(1.0, 1.0) == 0.0
    assert watch.check(1.2, 1.0) == 0.0  # NTP slewing, a late wake-up: not a step
    assert watch.check(-3599.0, 1.0) == -3600.0
    assert watch.check(601.0, 1.0) == 600.0
    assert steps == [-3600.0, 600.0]
    assert watch.steps() == {"backward": 1, "forward": 1}
