"""Reliability fixtures: a lab dated now (real clocks validate its chains), rigs per source, the fault matrix."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import ExitStack
from datetime import UTC, datetime

import pytest

from simulator.lab import Lab, build_lab
from tests.reliability.matrix import MATRIX, matrix_table


@pytest.fixture(scope="session")
def live_lab(tmp_path_factory: pytest.TempPathFactory) -> Lab:
    """A lab whose certificates are valid now, for daemons on the wall clock (shared: rigs only read it)."""
    return build_lab(tmp_path_factory.mktemp("reliability") / "lab", now=datetime.now(UTC), port=0)


@pytest.fixture(scope="module")
def stack() -> Iterator[ExitStack]:
    """Everything the module's rigs started, stopped at the end of the module."""
    with ExitStack() as everything:
        yield everything


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    """Print the fault matrix after the run when any of its cells ran."""
    if not MATRIX:
        return
    terminalreporter.section("fault matrix: daemon serves /metrics, reports the reason, keeps data, recovers")
    for line in matrix_table():
        terminalreporter.write_line(line)
