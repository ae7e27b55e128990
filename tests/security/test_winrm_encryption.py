"""WinRM never goes in clear text: no transport without encryption, and clear answers to sealed requests refused.

Over HTTP certmon speaks NTLM (or Kerberos) with message encryption; Basic only over HTTPS.
Something in the path that strips the encryption from the node's answers (a downgrade) could
feed certmon a forged inventory: pywinrm passes such answers through, certmon refuses them.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from collectors.base import Deadline
from collectors.errors import CollectorError, Reason
from collectors.winrm import WinRMCollector, WinRMOptions
from collectors.winrm.transport import Endpoint, _protocol_options
from simulator.lab import Lab
from simulator.winrm import SimulatedFleet


@pytest.fixture
def aos1(lab_template: Lab) -> Iterator[tuple[SimulatedFleet, WinRMCollector]]:
    """AOS1 of the session's lab, and a collector with the lab's account (NTLM, sealed)."""
    with SimulatedFleet.from_lab(lab_template, names=["AOS1"]) as fleet:
        options = WinRMOptions(username=lab_template.winrm_username, password=lab_template.winrm_password)
        collector = WinRMCollector(options, nodes=["AOS1"], addresses=fleet.addresses())
        try:
            yield fleet, collector
        finally:
            collector.close()


def test_every_message_is_sealed(aos1: tuple[SimulatedFleet, WinRMCollector]) -> None:
    fleet, collector = aos1
    assert collector.collect("AOS1", Deadline.after(20)).certificates
    counters = fleet["AOS1"].counters.snapshot()
    # Create, Command, Receive, Delete: every SOAP message sealed; the rest are the NTLM logon's legs.
    assert counters["encrypted"] == 4 and counters["handshakes"] == 1, counters


def test_clear_text_answers_to_sealed_requests_are_refused(aos1: tuple[SimulatedFleet, WinRMCollector]) -> None:
    fleet, collector = aos1
    fleet["AOS1"].configure(plaintext_answers=True)
    with pytest.raises(CollectorError) as caught:
        collector.collect("AOS1", Deadline.after(20))
    assert caught.value.source.startswith("AOS1 (http://")
    assert caught.value.reason == Reason.PROTOCOL_ERROR
    assert "without message encryption" in caught.value.message
    fleet["AOS1"].configure(plaintext_answers=False)
    assert collector.collect("AOS1", Deadline.after(20)).certificates  # recovers once answers are sealed again


@pytest.mark.parametrize("transport", ["basic", "plaintext", "ntlm-noencrypt", ""])
def test_transports_without_encryption_are_refused(transport: str) -> None:
    with pytest.raises(ValueError, match="refused: it would send credentials or data unencrypted"):
        WinRMOptions(username="svc", password="pw", transport=transport)  # type: ignore[arg-type]


def test_credssp_is_accepted_and_sealed() -> None:
    """CredSSP seals every message over http (pywinrm's message_encryption), so it is not in the refused list."""
    assert WinRMOptions(username="svc", password="pw", transport="credssp").transport == "credssp"
    endpoint = Endpoint("AOS1", "aos1", 5985, transport="credssp", username="svc", password="pw")
    assert endpoint.url.startswith("http://")
    assert _protocol_options(endpoint)["message_encryption"] == "always"


def test_basic_is_only_spoken_over_https() -> None:
    endpoint = Endpoint("AOS1", "aos1", 5986, transport="https-basic", username="svc", password="pw")
    assert endpoint.url.startswith("https://")
    assert _protocol_options(endpoint)["message_encryption"] == "never"  # TLS carries the confidentiality
    sealed = Endpoint("AOS1", "aos1", 5985, transport="ntlm", username="svc", password="pw")
    assert sealed.url.startswith("http://")
    assert _protocol_options(sealed)["message_encryption"] == "always"
    forged = Endpoint("AOS1", "aos1", 5985, transport="basic", username="svc", password="pw")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="would send credentials unencrypted"):
        _protocol_options(forged)


def test_a_tampered_sealed_answer_is_refused_not_read(aos1: tuple[SimulatedFleet, WinRMCollector]) -> None:
    """One bit flipped in the sealed message: the signature check refuses it; nothing of it is returned."""
    fleet, collector = aos1
    fleet["AOS1"].configure(tampered_answers=True)
    try:
        with pytest.raises(CollectorError) as caught:
            collector.collect("AOS1", Deadline.after(20))
    finally:
        fleet["AOS1"].configure(tampered_answers=False)
    assert caught.value.reason == Reason.PROTOCOL_ERROR
    assert "sealed answer was refused" in caught.value.message and "cannot unseal" in caught.value.message
    assert collector.collect("AOS1", Deadline.after(20)).certificates  # recovers once answers are intact again
