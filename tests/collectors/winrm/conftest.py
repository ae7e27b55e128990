"""Fixtures for the WinRM collector: a lab shared by the module, simulated nodes per test."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from typing import Any

import pytest

from collectors.winrm import WinRMCollector, WinRMOptions
from simulator.lab import Lab, build_lab
from simulator.winrm import SimulatedFleet

STORES = ("LocalMachine\\My", "LocalMachine\\Root")
NOW = datetime(2026, 11, 27, 12, 0, 0, tzinfo=UTC)


@pytest.fixture(scope="module")
def shared_lab(tmp_path_factory: pytest.TempPathFactory) -> Lab:
    """A lab the tests of one module read but never change."""
    return build_lab(tmp_path_factory.mktemp("winrm") / "lab", now=NOW, port=0)


@pytest.fixture
def fleet(shared_lab: Lab) -> Iterator[SimulatedFleet]:
    """One simulated node per lab VM, listening on loopback."""
    with SimulatedFleet.from_lab(shared_lab) as simulated:
        yield simulated


def lab_options(lab: Lab, **overrides: Any) -> WinRMOptions:
    """NTLM options with the lab's account."""
    values: dict[str, Any] = {
        "username": lab.winrm_username,
        "password": lab.winrm_password,
        "stores": STORES,
        "operation_timeout": 0.3,
    }
    values.update(overrides)
    return WinRMOptions(**values)


@pytest.fixture
def make_collector(shared_lab: Lab, fleet: SimulatedFleet) -> Iterator[Callable[..., WinRMCollector]]:
    """Build collectors pointed at the fleet; closed after the test."""
    made: list[WinRMCollector] = []

    def make(*, timeout: float = 10.0, concurrency: int = 4, **overrides: Any) -> WinRMCollector:
        collector = WinRMCollector(
            lab_options(shared_lab, **overrides),
            nodes=[n.name for n in shared_lab.nodes],
            addresses=fleet.addresses(),
            timeout=timeout,
            concurrency=concurrency,
        )
        made.append(collector)
        return collector

    yield make
    for collector in made:
        collector.close()
