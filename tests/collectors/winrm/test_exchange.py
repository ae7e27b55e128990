"""The direct exchange after the logon (collectors/winrm/exchange.py) against simulated nodes."""

from __future__ import annotations

from collections.abc import Callable

from collectors.base import Deadline
from collectors.winrm import WinRMCollector
from simulator.winrm import SimulatedFleet

MakeCollector = Callable[..., WinRMCollector]
NODE = "AOS1"


def test_steady_cycles_use_the_direct_exchange(fleet: SimulatedFleet, make_collector: MakeCollector) -> None:
    collector = make_collector()
    first = collector.collect(NODE, Deadline.after(20))
    session = collector.session(NODE)
    assert session is not None and session._protocol is not None
    assert session._protocol.transport.send_message.__module__ == "collectors.winrm.exchange"
    fleet.reset_counters()
    second = collector.collect(NODE, Deadline.after(20))
    counters = fleet.counters()[NODE]
    assert (counters["requests"], counters["encrypted"], counters["handshakes"]) == (3, 3, 0)
    assert [c.certificate.thumbprint for c in second.certificates] == [
        c.certificate.thumbprint for c in first.certificates
    ]


def test_a_401_after_the_logon_logs_on_again_within_the_cycle(
    fleet: SimulatedFleet, make_collector: MakeCollector
) -> None:
    collector = make_collector()
    expected = {c.certificate.thumbprint for c in collector.collect(NODE, Deadline.after(20)).certificates}
    session = collector.session(NODE)
    assert session is not None and session.logons == 1
    fleet[NODE].configure(unauthorized_after_logon=1)
    again = collector.collect(NODE, Deadline.after(20))
    assert {c.certificate.thumbprint for c in again.certificates} == expected
    assert session.logons == 2  # the refused message was not replayed on the old keys: a fresh logon
    assert fleet[NODE].faults.unauthorized_after_logon == 0
