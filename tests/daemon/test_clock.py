"""certmon's clock: the wall clock, or the demo's simulated time from the configuration."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import yaml
from pydantic import ValidationError

from daemon.app import Daemon
from daemon.clock import ScaledClock, settings_clock
from daemon.runner import utc_now
from daemon.settings import Settings, load_settings
from simulator.lab import Lab


class WallClock:
    """A wall clock the test moves."""

    def __init__(self, now: datetime) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now


def test_scaled_time_runs_speed_times_as_fast(now: datetime) -> None:
    wall = WallClock(now + timedelta(seconds=10))
    clock = ScaledClock(60, since=now, wall=wall)
    assert clock() == now + timedelta(minutes=10)
    wall.now += timedelta(seconds=1)
    assert clock() == now + timedelta(minutes=11)
    assert clock.seconds() == (now + timedelta(minutes=11)).timestamp()


def test_speed_one_is_the_wall_clock(now: datetime) -> None:
    wall = WallClock(now + timedelta(hours=3))
    assert ScaledClock(1, since=now, wall=wall)() == wall.now


@pytest.mark.parametrize("speed", [0, -2])
def test_speed_must_be_positive(now: datetime, speed: float) -> None:
    with pytest.raises(ValueError, match="speed must be positive"):
        ScaledClock(speed, since=now)


def test_settings_without_simulated_time_use_the_wall_clock() -> None:
    assert settings_clock(Settings()) is utc_now


def test_simulated_time_from_the_configuration(lab: Lab) -> None:
    config = yaml.safe_load(lab.config_file.read_text())
    config["simulated_time"] = {"speed": 100, "since": "2026-11-01T00:00:00Z"}
    lab.config_file.write_text(yaml.safe_dump(config))
    settings = load_settings(lab.config_file)
    clock = settings_clock(settings)
    assert isinstance(clock, ScaledClock) and clock.speed == 100
    assert clock.since == datetime(2026, 11, 1, tzinfo=UTC)
    # Weeks of wall time since then, each running 100 times as fast: far ahead of the wall clock.
    assert clock() - utc_now() > timedelta(days=365)
    daemon = Daemon(settings)
    try:
        assert daemon.clock is not utc_now and isinstance(daemon.clock, ScaledClock)
    finally:
        daemon.stop()


def test_simulated_time_needs_a_time_zone(tmp_path: Path) -> None:
    with pytest.raises(ValidationError, match="since needs a time zone"):
        Settings.model_validate({"simulated_time": {"speed": 2, "since": "2026-11-27T11:00:00"}})


def test_production_runs_on_the_real_clock() -> None:
    with pytest.raises(ValidationError, match="simulated_time is for the demo"):
        Settings.model_validate(
            {"production": True, "simulated_time": {"speed": 2, "since": "2026-11-27T11:00:00+00:00"}}
        )
