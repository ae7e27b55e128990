"""certmon's clock: the wall clock, or the demo's simulated time that runs faster (`simulated_time`)."""

from __future__ import annotations

from datetime import datetime

from daemon.runner import Clock, utc_now
from daemon.settings import Settings


class ScaledClock:
    """Time that runs `speed` times as fast as `wall` from the moment `since` on (where both agree)."""

    def __init__(self, speed: float, since: datetime, wall: Clock = utc_now) -> None:
        if speed <= 0:
            raise ValueError("speed must be positive")
        self.speed = speed
        self.since = since
        self._wall = wall

    def __call__(self) -> datetime:
        """The simulated moment now."""
        return self.since + (self._wall() - self.since) * self.speed

    def seconds(self) -> float:
        """The simulated moment as Unix seconds (for simulated peers that want a float clock)."""
        return self().timestamp()


def settings_clock(settings: Settings) -> Clock:
    """The clock a configuration asks for: the wall clock unless `simulated_time` is set."""
    simulated = settings.simulated_time
    if simulated is None:
        return utc_now
    return ScaledClock(simulated.speed, simulated.since)
