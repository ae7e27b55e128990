"""Every fault knob of the simulated node maps to its reason, and the other nodes keep reporting."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any

import pytest

from collectors.base import Deadline
from collectors.errors import CollectorError, Reason
from collectors.winrm import WinRMCollector
from daemon.runner import Runner
from simulator.lab import Lab
from simulator.winrm import SimulatedFleet

MakeCollector = Callable[..., WinRMCollector]
FAULTY = "AOS1"

CASES: list[tuple[dict[str, Any], Reason, str]] = [
    ({"hang": True}, Reason.TIMEOUT, "deadline"),
    ({"latency": 5.0}, Reason.TIMEOUT, "deadline"),
    ({"refuse": True}, Reason.CONNECTION_REFUSED, "connection refused"),
    ({"wrong_password": True}, Reason.AUTH_FAILED, "rejected the credentials"),
    ({"soap_fault": "Access is denied."}, Reason.PROTOCOL_ERROR, "Access is denied"),
    ({"operation_timeouts": -1}, Reason.TIMEOUT, "deadline"),
    ({"stdout": "garbage"}, Reason.BAD_OUTPUT, "output is not text"),
    ({"stdout": "truncated"}, Reason.BAD_OUTPUT, "truncated"),
    ({"script_error": "Access to the registry key is denied."}, Reason.SCRIPT_ERROR, "registry key is denied"),
    ({"shell_quota_exceeded": True}, Reason.PROTOCOL_ERROR, "concurrent shells"),
]


@pytest.mark.parametrize(("knobs", "reason", "text"), CASES, ids=[next(iter(k)) + "-" + r for k, r, _ in CASES])
def test_fault_maps_to_reason_while_other_nodes_report(
    shared_lab: Lab,
    fleet: SimulatedFleet,
    make_collector: MakeCollector,
    knobs: dict[str, Any],
    reason: Reason,
    text: str,
) -> None:
    collector = make_collector(timeout=10.0, concurrency=4)
    runner = Runner("test", [collector])
    runner.run_source("winrm")  # a good cycle first: its data must survive the failure
    collector.timeout = 2.0
    fleet[FAULTY].configure(**knobs)
    if "shell_quota_exceeded" in knobs:
        fleet[FAULTY].restart_service()  # the shell certmon held is gone; others hold the quota now
    started = time.monotonic()
    runner.run_source("winrm")
    elapsed = time.monotonic() - started
    results = {r.target: r for r in runner.snapshot().of_source("winrm")}
    failed = results[FAULTY]
    assert not failed.health.ok
    assert failed.health.reason is reason
    assert text in failed.health.message
    assert FAULTY in failed.health.message
    assert failed.errors_total == {reason: 1}
    assert failed.stale and failed.observation is not None and failed.observation.certificates
    assert all(r.health.ok for name, r in results.items() if name != FAULTY)
    assert len(results) == len(shared_lab.nodes)
    # A hung node costs its own deadline, not the cycle's: 9 nodes, 4 at a time, 2 s deadline.
    assert elapsed < 2.0 + 2.0
    assert shared_lab.winrm_password not in failed.health.message


def test_node_recovers_when_the_fault_clears(fleet: SimulatedFleet, make_collector: MakeCollector) -> None:
    collector = make_collector(timeout=2.0)
    runner = Runner("test", [collector])
    collector.timeout = 10.0
    runner.run_source("winrm")
    collector.timeout = 2.0
    for knobs, clear in (
        ({"refuse": True}, {"refuse": False}),
        ({"wrong_password": True}, {"wrong_password": False}),
        ({"hang": True}, {"hang": False}),
        ({"stdout": "garbage"}, {"stdout": "ok"}),
    ):
        fleet[FAULTY].configure(**knobs)
        runner.run_source("winrm")
        assert not runner.snapshot().results[("winrm", FAULTY)].health.ok
        fleet[FAULTY].configure(**clear)
        runner.run_source("winrm")
        assert runner.snapshot().results[("winrm", FAULTY)].health.ok, knobs


def test_operation_timeout_faults_are_retried_within_the_deadline(
    fleet: SimulatedFleet, make_collector: MakeCollector
) -> None:
    fleet["AOS2"].configure(operation_timeouts=3)
    observation = make_collector(operation_timeout=0.2).collect("AOS2", Deadline.after(5))
    assert observation.certificates
    assert fleet["AOS2"].counters.snapshot()["actions"]["Receive"] == 4


def test_endless_operation_timeouts_end_at_the_deadline_in_the_calling_thread(
    fleet: SimulatedFleet, make_collector: MakeCollector
) -> None:
    # pywinrm's own receive loop would retry these forever; the collector's thread must come back.
    fleet["AOS3"].configure(operation_timeouts=-1)
    collector = make_collector(operation_timeout=5.0)
    outcome: list[BaseException] = []

    def work() -> None:
        try:
            collector.collect("AOS3", Deadline.after(1.5))
        except CollectorError as err:
            outcome.append(err)

    thread = threading.Thread(target=work)
    started = time.monotonic()
    thread.start()
    thread.join(5)
    assert not thread.is_alive()
    assert time.monotonic() - started < 2.5
    assert isinstance(outcome[0], CollectorError) and outcome[0].reason is Reason.TIMEOUT


def test_clixml_progress_on_stderr_is_noise(fleet: SimulatedFleet, make_collector: MakeCollector) -> None:
    fleet["BI1"].configure(clixml_progress=True)
    observation = make_collector().collect("BI1", Deadline.after(10))
    assert observation.certificates and observation.problems == ()


def test_abandoned_shell_is_deleted_on_recovery(fleet: SimulatedFleet, make_collector: MakeCollector) -> None:
    collector = make_collector()
    collector.collect("MR1", Deadline.after(10))
    fleet["MR1"].configure(operation_timeouts=-1)
    with pytest.raises(CollectorError):
        collector.collect("MR1", Deadline.after(1.0))
    fleet["MR1"].configure(operation_timeouts=0)
    assert collector.collect("MR1", Deadline.after(10)).certificates
    # The shell left behind by the timed-out command was deleted, not leaked against the quota.
    assert len(fleet["MR1"].wsman.shells) == 1
    assert fleet["MR1"].counters.snapshot()["actions"]["Delete"] == 1
