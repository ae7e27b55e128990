"""A node (or anything at its address) that answers with 500 MB, an endless chunked body, or one byte a second.

Before the logon (the first answer, no credential checked yet) and after it (a sealed session),
the collector must stop reading at its size cap or its deadline, say why, keep its memory, free
the node's session for the next cycle, and leave no reading thread behind.
"""

from __future__ import annotations

import resource
import threading
from collections.abc import Iterator

import pytest

from collectors.base import Deadline
from collectors.errors import CollectorError, Reason
from collectors.winrm import WinRMCollector, WinRMOptions
from simulator.lab import Lab
from simulator.winrm import SimulatedFleet

DEADLINE = 3.0
# The reading thread ends at the deadline; this only bounds the wait if it does not.
JOIN = DEADLINE + 30.0
CASES = [
    ("huge", False, Reason.BAD_OUTPUT, "announces"),
    ("huge", True, Reason.BAD_OUTPUT, "announces"),
    ("endless-chunked", False, Reason.BAD_OUTPUT, "larger than"),
    ("endless-chunked", True, Reason.BAD_OUTPUT, "larger than"),
    ("trickle-body", False, Reason.TIMEOUT, "deadline"),
    ("trickle-body", True, Reason.TIMEOUT, "deadline"),
    ("trickle-headers", False, Reason.TIMEOUT, "deadline"),
    ("trickle-headers", True, Reason.TIMEOUT, "deadline"),
]


@pytest.fixture
def aos1(lab_template: Lab) -> Iterator[tuple[SimulatedFleet, WinRMCollector]]:
    """AOS1 of the session's lab, and a collector with the lab's account (NTLM, sealed)."""
    with SimulatedFleet.from_lab(lab_template, names=["AOS1"]) as fleet:
        options = WinRMOptions(
            username=lab_template.winrm_username, password=lab_template.winrm_password, operation_timeout=1.0
        )
        collector = WinRMCollector(options, nodes=["AOS1"], addresses=fleet.addresses())
        try:
            yield fleet, collector
        finally:
            collector.close()


def _peak_rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _collect_in_thread(collector: WinRMCollector) -> BaseException | None:
    """One collection in its own thread; the thread must end (the test waits on it, bounded)."""
    outcome: list[BaseException | None] = []

    def work() -> None:
        try:
            collector.collect("AOS1", Deadline.after(DEADLINE))
            outcome.append(None)
        except BaseException as err:  # handed to the test
            outcome.append(err)

    thread = threading.Thread(target=work, name="hostile-collect")
    thread.start()
    thread.join(JOIN)
    assert not thread.is_alive(), "the reading thread outlived the deadline"
    return outcome[0]


@pytest.mark.parametrize(
    ("mode", "after_logon", "reason", "text"),
    CASES,
    ids=[f"{m}-{'after' if a else 'before'}-logon" for m, a, _, _ in CASES],
)
def test_hostile_answer_is_cut_at_the_cap_or_the_deadline(
    aos1: tuple[SimulatedFleet, WinRMCollector], mode: str, after_logon: bool, reason: Reason, text: str
) -> None:
    fleet, collector = aos1
    node = fleet["AOS1"]
    if after_logon:
        # A good cycle first: the connection is logged on and sealed when the node turns hostile.
        assert collector.collect("AOS1", Deadline.after(20)).certificates
    node.configure(hostile_answer=mode, hostile_after_logon=after_logon, trickle_interval=0.2)
    peak_before = _peak_rss_mib()
    error = _collect_in_thread(collector)
    grown = _peak_rss_mib() - peak_before
    assert isinstance(error, CollectorError), error
    assert error.reason is reason, error
    assert text in error.message, error.message
    assert grown < 64, f"peak RSS grew {grown:.0f} MiB reading a hostile answer"
    # The node's session is free again: the next cycle talks to the node (and succeeds once it behaves).
    node.configure(hostile_answer=None)
    assert collector.collect("AOS1", Deadline.after(20)).certificates
