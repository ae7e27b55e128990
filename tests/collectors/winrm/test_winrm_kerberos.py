"""Transport negotiate against a real MIT KDC: Kerberos with the service account's keytab, no password.

The simulated node accepts Kerberos through pyspnego's GSSAPI acceptor with its own keytab
(HTTP/localhost, WSMAN/localhost); certmon gets its ticket from the client keytab (KRB5_CLIENT_KTNAME)
into a credential cache (KRB5CCNAME), as a Linux service account does. The node is reached as
`localhost`, so the SPN is HTTP/localhost and nothing is resolved through DNS.
"""

from __future__ import annotations

import shutil
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from collectors.base import Deadline
from collectors.errors import CollectorError, Reason
from collectors.winrm import WinRMCollector, WinRMOptions
from collectors.winrm.negotiate import unavailable_reason
from simulator.lab import Lab
from simulator.pki import Issued, days, make_certificate
from simulator.winrm import SimulatedFleet
from tests.kdc import NODE_HOST, REALM, SERVICE_ACCOUNT, MitKdc, missing_tools

NODE = "AOS1"
STORES = ("LocalMachine\\My", "LocalMachine\\Root")

pytestmark = pytest.mark.skipif(
    bool(missing_tools()) or unavailable_reason() is not None,
    reason=f"MIT Kerberos missing: {', '.join(missing_tools()) or unavailable_reason()} "
    "(Debian krb5-kdc krb5-admin-server krb5-user; pip install 'certmon[kerberos]')",
)


@pytest.fixture(scope="module")
def kdc(tmp_path_factory: pytest.TempPathFactory) -> Iterator[MitKdc]:
    """A KDC for realm CERTMON.TEST on a free loopback port."""
    with MitKdc(tmp_path_factory.mktemp("kdc")) as running:
        yield running


@pytest.fixture
def ccache(kdc: MitKdc, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The service's Kerberos environment: the realm's krb5.conf, a fresh ccache, the client keytab."""
    path = tmp_path / "ccache"
    monkeypatch.setenv("KRB5_CONFIG", str(kdc.krb5_conf))
    monkeypatch.setenv("KRB5CCNAME", f"FILE:{path}")
    monkeypatch.setenv("KRB5_CLIENT_KTNAME", f"FILE:{kdc.client_keytab}")
    monkeypatch.setenv("KRB5_KTNAME", f"FILE:{kdc.node_keytab}")  # restored after the test; the node sets it
    return path


@pytest.fixture
def node_fleet(shared_lab: Lab, kdc: MitKdc) -> Iterator[SimulatedFleet]:
    """AOS1 with the keytab of HTTP/localhost and WSMAN/localhost."""
    with SimulatedFleet.from_lab(shared_lab, names=[NODE]) as fleet:
        fleet[NODE].keytab = kdc.node_keytab
        yield fleet


def collector_for(fleet: SimulatedFleet, **options: Any) -> WinRMCollector:
    """Transport negotiate to AOS1 by the name its SPN carries; no user name or password unless given."""
    port = fleet[NODE].address.rsplit(":", 1)[1]
    values: dict[str, Any] = {"transport": "negotiate", "stores": STORES, "operation_timeout": 0.5}
    values.update(options)
    return WinRMCollector(WinRMOptions(**values), nodes=[NODE], addresses={NODE: f"{NODE_HOST}:{port}"})


def auth_failure(fleet: SimulatedFleet, **options: Any) -> CollectorError:
    """The CollectorError of one collection that must fail."""
    collector = collector_for(fleet, **options)
    try:
        with pytest.raises(CollectorError) as caught:
            collector.collect(NODE, Deadline.after(15))
    finally:
        collector.close()
    return caught.value


def test_keytab_ticket_without_password_collects_with_message_encryption(
    shared_lab: Lab, kdc: MitKdc, ccache: Path, node_fleet: SimulatedFleet
) -> None:
    ntlm = WinRMCollector(
        WinRMOptions(username=shared_lab.winrm_username, password=shared_lab.winrm_password, stores=STORES),
        nodes=[NODE],
        addresses=node_fleet.addresses(),
    )
    kerberos = collector_for(node_fleet)
    try:
        expected = {(o.store, o.thumbprint) for o in ntlm.collect(NODE, Deadline.after(15)).certificates}
        node_fleet[NODE].counters.reset()
        for _ in range(2):
            observation = kerberos.collect(NODE, Deadline.after(15))
            assert {(o.store, o.thumbprint) for o in observation.certificates} == expected
            assert observation.problems == ()
        counters = node_fleet[NODE].counters.snapshot()
    finally:
        ntlm.close()
        kerberos.close()
    # One Kerberos logon for both cycles, and every SOAP message sealed (Create + 2 x Command/Receive/Signal).
    assert counters["handshakes"] == 1 and counters["logons"] == 1 and counters["auth_failures"] == 0
    assert counters["encrypted"] == 7 == counters["requests"] - 1
    # The ticket came from the keytab through the KDC: the ccache now holds the node's service ticket.
    assert f"HTTP/{NODE_HOST}@{REALM}" in kdc.list_tickets(ccache)
    assert f"{SERVICE_ACCOUNT}@{REALM}" in kdc.list_tickets(ccache)


def test_clear_text_answer_after_kerberos_logon_is_refused(ccache: Path, node_fleet: SimulatedFleet) -> None:
    node_fleet[NODE].configure(plaintext_answers=True)
    error = auth_failure(node_fleet)
    assert error.reason is Reason.PROTOCOL_ERROR and "without message encryption" in str(error)


def test_spn_unknown_to_the_kdc_is_auth_failed(ccache: Path, node_fleet: SimulatedFleet) -> None:
    error = auth_failure(node_fleet, spn_service="HOST")
    assert error.reason is Reason.AUTH_FAILED
    assert f"SPN HOST/{NODE_HOST} is not known to the KDC" in str(error)


def test_node_without_the_key_of_its_spn_rejects_the_ticket(
    kdc: MitKdc, ccache: Path, node_fleet: SimulatedFleet, tmp_path: Path
) -> None:
    # The node holds only WSMAN/localhost; the client asks for HTTP/localhost: its ticket cannot be read.
    wsman_only = tmp_path / "wsman-only.keytab"
    kdc.admin(f"ktadd -k {wsman_only} -norandkey WSMAN/{NODE_HOST}")
    node_fleet[NODE].keytab = wsman_only
    error = auth_failure(node_fleet)
    assert error.reason is Reason.AUTH_FAILED
    assert "rejected the Kerberos ticket" in str(error)
    assert node_fleet[NODE].counters.snapshot()["auth_failures"] == 1


def test_wsman_spn_when_configured(kdc: MitKdc, ccache: Path, node_fleet: SimulatedFleet) -> None:
    collector = collector_for(node_fleet, spn_service="WSMAN")
    try:
        assert collector.collect(NODE, Deadline.after(15)).certificates
    finally:
        collector.close()
    assert f"WSMAN/{NODE_HOST}@{REALM}" in kdc.list_tickets(ccache)


def test_no_ticket_and_no_keytab_is_auth_failed(
    ccache: Path, node_fleet: SimulatedFleet, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("KRB5_CLIENT_KTNAME", f"FILE:{tmp_path / 'absent.keytab'}")
    error = auth_failure(node_fleet)
    assert error.reason is Reason.AUTH_FAILED
    assert "no Kerberos ticket for the service account" in str(error)
    assert node_fleet[NODE].counters.snapshot()["requests"] == 0  # nothing was sent without a ticket


def test_expired_ticket_is_auth_failed(
    kdc: MitKdc, ccache: Path, node_fleet: SimulatedFleet, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("KRB5_CLIENT_KTNAME", f"FILE:{tmp_path / 'absent.keytab'}")
    kdc.kinit_keytab(ccache, lifetime="2s")
    deadline = time.monotonic() + 30
    while kdc.ticket_valid(ccache):  # wait for the ticket's end time, as klist sees it
        assert time.monotonic() < deadline, "the 2-second ticket did not expire"
        time.sleep(0.1)
    error = auth_failure(node_fleet)
    assert error.reason is Reason.AUTH_FAILED
    assert "expired" in str(error)


def test_ntlm_fallback_only_when_allowed(shared_lab: Lab, ccache: Path, node_fleet: SimulatedFleet) -> None:
    # An account the KDC does not know: Kerberos is impossible; NTLM works only with allow_ntlm.
    account = {"username": shared_lab.winrm_username, "password": shared_lab.winrm_password}
    refused = auth_failure(node_fleet, **account)
    assert refused.reason is Reason.AUTH_FAILED
    assert shared_lab.winrm_password not in str(refused)
    collector = collector_for(node_fleet, allow_ntlm=True, **account)
    try:
        assert collector.collect(NODE, Deadline.after(15)).certificates
    finally:
        collector.close()


@pytest.fixture(scope="module")
def server_cert(shared_lab: Lab) -> Issued:
    """AOS1's WinRM HTTPS certificate."""
    return make_certificate(
        "aos1.contoso.lab",
        not_before=days(shared_lab.now, -10),
        not_after=days(shared_lab.now, 300),
        issuer=shared_lab.ca,
        dns_names=("aos1.contoso.lab", NODE_HOST),
    )


@pytest.fixture
def https_node(shared_lab: Lab, kdc: MitKdc, server_cert: Issued) -> Iterator[SimulatedFleet]:
    """AOS1 on HTTPS with its keytab; it binds Negotiate logons to its certificate."""
    with SimulatedFleet.from_lab(shared_lab, tls=server_cert, names=[NODE]) as fleet:
        fleet[NODE].keytab = kdc.node_keytab
        yield fleet


def test_https_negotiate_binds_the_logon_to_the_server_certificate(
    ccache: Path, https_node: SimulatedFleet, server_cert: Issued
) -> None:
    collector = collector_for(https_node, transport="https-negotiate", server_thumbprint=server_cert.thumbprint)
    try:
        for _ in range(2):
            assert collector.collect(NODE, Deadline.after(15)).certificates
    finally:
        collector.close()
    counters = https_node[NODE].counters.snapshot()
    assert counters["logons"] == 1 and counters["auth_failures"] == 0 and counters["encrypted"] == 0


def test_https_negotiate_refused_when_the_binding_differs(
    shared_lab: Lab, ccache: Path, https_node: SimulatedFleet, server_cert: Issued
) -> None:
    # The node expects bindings of another certificate, as when a relay terminates TLS in between.
    https_node[NODE].certificate = shared_lab.ca.der
    error = auth_failure(https_node, transport="https-negotiate", server_thumbprint=server_cert.thumbprint)
    assert error.reason is Reason.AUTH_FAILED
    assert https_node[NODE].counters.snapshot()["auth_failures"] == 1


def test_configuration_without_password_reaches_the_node(
    ccache: Path, node_fleet: SimulatedFleet, tmp_path: Path
) -> None:
    from daemon.settings import load_settings
    from daemon.sources.registry import build_collectors

    port = node_fleet[NODE].address.rsplit(":", 1)[1]
    config = tmp_path / "certmon.yaml"
    config.write_text(
        f"data_dir: {tmp_path / 'data'}\n"
        "sources:\n"
        f"  winrm: {{transport: negotiate, nodes: [{NODE}], addresses: {{{NODE}: '{NODE_HOST}:{port}'}}}}\n",
        encoding="utf-8",
    )
    (collector,) = [c for c in build_collectors(load_settings(config)) if c.name == "winrm"]
    assert isinstance(collector, WinRMCollector)
    try:
        assert collector.collect(NODE, Deadline.after(15)).certificates
    finally:
        collector.close()
    assert node_fleet[NODE].counters.snapshot()["logons"] == 1


def test_explicit_principal_and_password_log_on_with_kerberos(
    kdc: MitKdc, ccache: Path, node_fleet: SimulatedFleet, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    # No keytab and no ticket: only the configured password can get one, and NTLM stays off.
    monkeypatch.setenv("KRB5_CLIENT_KTNAME", f"FILE:{tmp_path / 'absent.keytab'}")
    password = "Kerberos-Pa55-" + tmp_path.name
    kdc.admin(f"addprinc +requires_preauth -pw {password} svc-explicit")  # as Active Directory requires
    collector = collector_for(node_fleet, username=f"svc-explicit@{REALM}", password=password)
    try:
        assert collector.collect(NODE, Deadline.after(15)).certificates
    finally:
        collector.close()
    assert node_fleet[NODE].counters.snapshot()["logons"] == 1
    wrong = auth_failure(node_fleet, username=f"svc-explicit@{REALM}", password=password + "-wrong")
    assert wrong.reason is Reason.AUTH_FAILED and password not in str(wrong)
    assert "the KDC refused the account's password" in str(wrong)


@pytest.mark.skipif(shutil.which("faketime") is None, reason="faketime (Debian package faketime) is missing")
def test_clock_skew_with_the_kdc_is_auth_failed(
    node_fleet: SimulatedFleet, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    # A KDC whose clock runs an hour ahead (libfaketime): the service's ticket request is refused.
    with MitKdc(tmp_path / "skewed", clock_offset="+1h") as skewed:
        monkeypatch.setenv("KRB5_CONFIG", str(skewed.krb5_conf))
        monkeypatch.setenv("KRB5CCNAME", f"FILE:{tmp_path / 'ccache'}")
        monkeypatch.setenv("KRB5_CLIENT_KTNAME", f"FILE:{skewed.client_keytab}")
        node_fleet[NODE].keytab = skewed.node_keytab
        error = auth_failure(node_fleet)
    assert error.reason is Reason.AUTH_FAILED
    assert "clock skew between this host, the KDC and the node is too large" in str(error)
