"""HTTPS with Basic: certificate validation against a CA bundle, thumbprint pinning, wrong credentials."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from collectors.base import Deadline
from collectors.errors import CollectorError, Reason
from collectors.winrm import WinRMCollector, WinRMOptions
from simulator.lab import Lab
from simulator.pki import Issued, days, make_certificate
from simulator.winrm import SimulatedFleet

NODE = "AOS1"


@pytest.fixture(scope="module")
def server_cert(shared_lab: Lab) -> Issued:
    """The node's WinRM HTTPS certificate, issued by the lab CA for 127.0.0.1."""
    return make_certificate(
        "aos1.contoso.lab",
        not_before=days(shared_lab.now, -10),
        not_after=days(shared_lab.now, 300),
        issuer=shared_lab.ca,
        dns_names=("aos1.contoso.lab",),
        ip_addresses=("127.0.0.1",),
    )


@pytest.fixture
def https_fleet(shared_lab: Lab, server_cert: Issued) -> Iterator[SimulatedFleet]:
    """AOS1 listening on HTTPS."""
    with SimulatedFleet.from_lab(shared_lab, tls=server_cert, names=[NODE]) as fleet:
        yield fleet


@pytest.fixture
def ca_file(shared_lab: Lab, tmp_path: Path) -> str:
    """The lab CA as a PEM bundle."""
    path = tmp_path / "lab-ca.pem"
    path.write_bytes(shared_lab.ca.pem)
    return str(path)


def collect(lab: Lab, fleet: SimulatedFleet, cycles: int = 1, **options: Any) -> WinRMCollector:
    """Collect AOS1 over HTTPS with Basic `cycles` times and return the collector."""
    values: dict[str, Any] = {
        "transport": "https-basic",
        "username": lab.winrm_username,
        "password": lab.winrm_password,
    }
    values.update(options)
    collector = WinRMCollector(WinRMOptions(**values), nodes=[NODE], addresses=fleet.addresses())
    try:
        for _ in range(cycles):
            observation = collector.collect(NODE, Deadline.after(10))
            assert observation.certificates
    finally:
        collector.close()
    return collector


def test_basic_over_https_validated_by_ca_bundle(shared_lab: Lab, https_fleet: SimulatedFleet, ca_file: str) -> None:
    node = https_fleet[NODE]
    collect(shared_lab, https_fleet, cycles=1, ca_bundle=ca_file)
    first = node.counters.snapshot()
    assert first["handshakes"] == 0 and first["encrypted"] == 0
    assert first["actions"] == {"Create": 1, "Command": 1, "Receive": 1, "Signal": 1, "Delete": 1}


def test_steady_https_cycle_costs_three_requests(shared_lab: Lab, https_fleet: SimulatedFleet, ca_file: str) -> None:
    node = https_fleet[NODE]
    values = {"transport": "https-basic", "username": shared_lab.winrm_username, "password": shared_lab.winrm_password}
    collector = WinRMCollector(
        WinRMOptions(ca_bundle=ca_file, **values), nodes=[NODE], addresses=https_fleet.addresses()
    )
    try:
        collector.collect(NODE, Deadline.after(10))
        node.counters.reset()
        collector.collect(NODE, Deadline.after(10))
        assert node.counters.snapshot()["requests"] == 3
        assert node.counters.snapshot()["connections"] == 0
    finally:
        collector.close()


def test_pinned_thumbprint_without_ca(shared_lab: Lab, https_fleet: SimulatedFleet, server_cert: Issued) -> None:
    collect(shared_lab, https_fleet, server_thumbprint=server_cert.thumbprint)


def test_ca_and_pin_together(shared_lab: Lab, https_fleet: SimulatedFleet, server_cert: Issued, ca_file: str) -> None:
    collect(shared_lab, https_fleet, ca_bundle=ca_file, server_thumbprint=server_cert.thumbprint)


@pytest.mark.parametrize("case", ["untrusted", "wrong-pin", "wrong-pin-with-ca"])
def test_tls_failures(shared_lab: Lab, https_fleet: SimulatedFleet, ca_file: str, case: str) -> None:
    options: dict[str, Any] = {
        "untrusted": {},
        "wrong-pin": {"server_thumbprint": shared_lab.ca.thumbprint},
        "wrong-pin-with-ca": {"server_thumbprint": shared_lab.ca.thumbprint, "ca_bundle": ca_file},
    }[case]
    with pytest.raises(CollectorError) as caught:
        collect(shared_lab, https_fleet, **options)
    assert caught.value.reason is Reason.TLS_ERROR
    assert NODE in str(caught.value)
    assert https_fleet[NODE].counters.snapshot()["requests"] == 0


def test_host_name_mismatch_is_a_tls_error_unless_pinned(shared_lab: Lab, ca_file: str) -> None:
    elsewhere = make_certificate(
        "bi1.contoso.lab",
        not_before=days(shared_lab.now, -10),
        not_after=days(shared_lab.now, 300),
        issuer=shared_lab.ca,
        dns_names=("bi1.contoso.lab",),
    )
    with SimulatedFleet.from_lab(shared_lab, tls=elsewhere, names=[NODE]) as fleet:
        with pytest.raises(CollectorError) as caught:
            collect(shared_lab, fleet, ca_bundle=ca_file)
        assert caught.value.reason is Reason.TLS_ERROR
        # Pinning names the exact certificate, so the name in it no longer matters.
        collect(shared_lab, fleet, server_thumbprint=elsewhere.thumbprint)


def test_wrong_basic_password(shared_lab: Lab, https_fleet: SimulatedFleet, ca_file: str) -> None:
    with pytest.raises(CollectorError) as caught:
        collect(shared_lab, https_fleet, ca_bundle=ca_file, password="not-the-password")
    assert caught.value.reason is Reason.AUTH_FAILED
    assert "not-the-password" not in str(caught.value)
    assert https_fleet[NODE].counters.snapshot()["auth_failures"] == 1
