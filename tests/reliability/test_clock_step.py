"""A backward step of the wall clock does not stall collection (the schedule runs on monotonic time).

time-machine moves the wall clock of this process (datetime.now, time.time) and leaves the
monotonic clock alone, as an NTP correction or a VM restored from a snapshot does; the
machine's own clock is never touched.
"""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta

import time_machine

from collectors.base import Collector, Deadline
from collectors.model import Observation
from daemon.app import Daemon
from daemon.settings import Settings


class CountingSource(Collector):
    """A source that only counts its cycles, and lets a test wait for the next ones."""

    name = "counting"

    def __init__(self) -> None:
        super().__init__(timeout=5, interval=0.2)
        self.cycles = 0
        self._changed = threading.Condition()

    def collect(self, target: str, deadline: Deadline) -> Observation:
        with self._changed:
            self.cycles += 1
            self._changed.notify_all()
        return Observation()

    def wait_for(self, cycles: int, timeout: float) -> bool:
        """Block until `cycles` cycles have run, at most `timeout` seconds."""
        with self._changed:
            return self._changed.wait_for(lambda: self.cycles >= cycles, timeout)


def test_backward_wall_clock_step_of_an_hour_does_not_stall_collection(lab_settings: Settings, tmp_path) -> None:  # type: ignore[no-untyped-def]
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
            # At 0.2 s per cycle, three more cycles take about a second; an hour-long stall never gets there.
            assert source.wait_for(done + 3, timeout=60), f"collection stalled after the clock step ({source.cycles})"
            traveller.shift(timedelta(hours=2))  # and forwards: no burst of missed runs, just the cadence
            done = source.cycles
            assert source.wait_for(done + 2, timeout=60)
        finally:
            daemon.stop()
