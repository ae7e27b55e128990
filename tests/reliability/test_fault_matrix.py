"""The fault matrix: every source x every fault class, against a real daemon serving /metrics over HTTP.

During the fault the daemon keeps answering scrapes, reports the reason (certmon_source_up 0 and
certmon_source_errors_total{reason}), keeps the last good data (its series still exported, the
last-success timestamp unchanged) and recovers when the fault clears. Classes that do not apply
to a source are listed in `NOT_APPLICABLE` and printed as such in the matrix.
"""

from __future__ import annotations

from contextlib import ExitStack

import pytest

from simulator.lab import Lab
from tests.reliability.matrix import MATRIX
from tests.reliability.rigs import (
    FAULTS,
    NOT_APPLICABLE,
    AdfsRig,
    FilesRig,
    Rig,
    ServiceFabricRig,
    SqlRig,
    TlsRig,
    WinRMRig,
    collecting,
)

CELLS = [(s, f) for s in ("winrm", "servicefabric", "sql", "adfs", "tls", "files") for f in FAULTS]
RUN = [cell for cell in CELLS if cell not in NOT_APPLICABLE]


@pytest.fixture(scope="module")
def rigs(live_lab: Lab, stack: ExitStack, request: pytest.FixtureRequest) -> dict[str, Rig]:
    """Rigs started on first use and kept for the module."""
    return _Rigs(live_lab, stack, request)  # type: ignore[return-value]


class _Rigs(dict[str, Rig]):
    def __init__(self, lab: Lab, stack: ExitStack, request: pytest.FixtureRequest) -> None:
        super().__init__()
        self.lab, self.stack, self.request = lab, stack, request

    def __missing__(self, source: str) -> Rig:
        rig: Rig
        if source == "winrm":
            rig = WinRMRig(self.lab, self.stack)
        elif source == "servicefabric":
            rig = ServiceFabricRig(self.lab, self.stack)
        elif source == "sql":
            rig = SqlRig(self.lab, self.stack, self.request.getfixturevalue("postgres_server"))
        elif source == "adfs":
            rig = AdfsRig(self.lab, self.stack)
        elif source == "tls":
            rig = TlsRig(self.lab, self.stack)
        else:
            rig = FilesRig(self.lab, self.stack)
        self[source] = rig
        return rig


@pytest.mark.parametrize(("source", "fault"), RUN, ids=[f"{s}-{f.split('/')[0]}" for s, f in RUN])
def test_fault(rigs: dict[str, Rig], source: str, fault: str) -> None:
    MATRIX[(source, fault)] = "FAILED"
    rig = rigs[source]
    spec = rig.faults[fault]
    rig.collect()
    good = rig.state()
    assert good.up == 1.0, f"{source} is not up before the fault"
    assert good.stale_series, f"{source} exported no {rig.data_metric} series"
    spec.inject()
    try:
        with collecting(rig) as scrapes:
            during = rig.state(scrapes[-1])
        assert scrapes  # /metrics answered (while the cycle ran, when it took a while, and after it)
        assert during.up == 0.0, f"{spec.how}: the source still says up"
        grew = {r: n - good.errors.get(r, 0.0) for r, n in during.errors.items() if n != good.errors.get(r, 0.0)}
        assert grew == {str(spec.reason): 1.0}, f"{spec.how}: expected reason {spec.reason}, counted {grew}"
        assert during.last_success == good.last_success, "the last-success timestamp moved during the fault"
        assert during.stale_series == good.stale_series, "the last good data was not kept"
        assert rig.daemon is not None
        health = rig.daemon.runner.snapshot().results[(rig.source, rig.target)].health
        assert spec.text.lower() in health.message.lower(), health.message
    finally:
        spec.clear()
        rig.settle()
    rig.collect()
    after = rig.state()
    assert after.up == 1.0, f"{spec.how}: no recovery after the fault cleared"
    assert after.last_success is not None and good.last_success is not None
    assert after.last_success > good.last_success
    MATRIX[(source, fault)] = f"ok {spec.reason}"


def test_every_cell_is_run_or_explained() -> None:
    assert set(CELLS) == set(RUN) | set(NOT_APPLICABLE)
    assert not set(RUN) & set(NOT_APPLICABLE)
