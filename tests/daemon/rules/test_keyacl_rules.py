"""private-key-acl-missing: the service accounts must read the keys of the certificates they use.

The node stores come from the real WinRM collector against simulated nodes (the lab's key ACLs are
what Configure-PreReqs leaves: NETWORK SERVICE and the gMSAs granted Read).
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from collectors.model import Severity
from collectors.winrm import WinRMCollector, WinRMOptions
from daemon.evaluator import Evaluation
from simulator.winrm import SimulatedFleet
from simulator.winrm.nodefile import key_acl, set_key_acl
from tests.daemon.scenarios import Scenario, findings

NODES = ["AOS1", "AOS2", "ORCH1"]
RULE = "private-key-acl-missing"


@pytest.fixture
def fleet(scenario: Scenario) -> Iterator[SimulatedFleet]:
    """Simulated WinRM nodes for two AOS nodes and an orchestrator of the scenario's lab."""
    with SimulatedFleet.from_lab(scenario.lab, names=NODES) as simulated:
        yield simulated


def collect(scenario: Scenario, fleet: SimulatedFleet, **update: object) -> Evaluation:
    """One evaluation with the lab's sources plus the WinRM inventory of NODES."""
    lab = scenario.lab
    winrm = WinRMCollector(
        WinRMOptions(username=lab.winrm_username, password=lab.winrm_password),
        nodes=NODES,
        addresses=fleet.addresses(),
    )
    try:
        return scenario.collect(extra=[winrm], **update)
    finally:
        winrm.close()


def revoke(scenario: Scenario, node: str, role: str, generation: str, account: str) -> str:
    """Remove an account's rules from a certificate's key file on a node; the thumbprint."""
    thumbprint = scenario.lab.cert(role, generation).thumbprint
    folder = scenario.lab.certs_dir / node
    set_key_acl(folder, thumbprint, [r for r in key_acl(folder, thumbprint) if r[1] != account])
    return thumbprint


def step(evaluation: Evaluation, name: str) -> tuple[str, str, tuple[str, ...]]:
    """(status, detail, evidence) of one checklist step."""
    (state,) = [s for s in evaluation.checklist.steps if s.step == name]
    return state.status.value, state.detail, tuple(state.evidence)


def test_healthy_lab_has_no_key_acl_findings(scenario: Scenario, fleet: SimulatedFleet) -> None:
    evaluation = collect(scenario, fleet)
    assert findings(evaluation, RULE) == []
    assert step(evaluation, "certs-installed")[0] == "done"


def test_gmsa_missing_on_the_new_data_encryption_key(scenario: Scenario, fleet: SimulatedFleet) -> None:
    thumbprint = revoke(scenario, "AOS2", "DataEncryption", "new", "CONTOSO\\svc-AXSF$")
    evaluation = collect(scenario, fleet)
    (finding,) = findings(evaluation, RULE)
    assert (finding.node, finding.role, finding.thumbprint) == ("AOS2", "DataEncryption", thumbprint)
    assert finding.severity is Severity.CRITICAL, "DataEncryption is being rotated: the switch would break AXSF"
    assert (finding.source, finding.target, finding.step) == ("winrm", "AOS2", "certs-installed")
    assert "CONTOSO\\svc-AXSF$ cannot read the private key" in finding.message
    assert "Crypto\\RSA\\MachineKeys\\" in finding.message and "Keyset does not exist" in finding.message
    # The certs-installed step is not done while a new key is unreadable for its service.
    status, detail, evidence = step(evaluation, "certs-installed")
    assert status == "pending" and detail == "1 new private keys the service accounts cannot read"
    assert evidence == (f"AOS2: DataEncryption {thumbprint[:8]}: key not readable by CONTOSO\\svc-AXSF$",)


def test_network_service_missing_on_the_cluster_certificate(scenario: Scenario, fleet: SimulatedFleet) -> None:
    thumbprint = revoke(scenario, "ORCH1", "ServiceFabric", "new", "NT AUTHORITY\\NETWORK SERVICE")
    (finding,) = findings(collect(scenario, fleet), RULE)
    assert (finding.node, finding.role, finding.thumbprint) == ("ORCH1", "ServiceFabric", thumbprint)
    assert "NT AUTHORITY\\NETWORK SERVICE (S-1-5-20) cannot read" in finding.message


def test_the_old_certificate_is_not_checked_and_an_unread_acl_is_unknown(
    scenario: Scenario, fleet: SimulatedFleet
) -> None:
    # The previous generation is on its way out: its ACL is not what the switch needs.
    revoke(scenario, "AOS1", "DataEncryption", "old", "CONTOSO\\svc-AXSF$")
    # An ACL the inventory could not read is a problem of the source, not a missing grant.
    new_signing = scenario.lab.cert("DataSigning", "new").thumbprint
    set_key_acl(scenario.lab.certs_dir / "AOS1", new_signing, {"error": "Access is denied"})
    assert findings(collect(scenario, fleet), RULE) == []


def test_accounts_come_from_settings_and_the_template(scenario: Scenario, fleet: SimulatedFleet) -> None:
    revoke(scenario, "AOS1", "SessionAuthentication", "new", "CONTOSO\\svc-AXSF$")

    def local_agent_only(settings):  # type: ignore[no-untyped-def]
        settings.rules.key_readers = {"SessionAuthentication": ["gmsaLocalAgent", "gmsaUnknown"]}

    lab = scenario.lab
    winrm = WinRMCollector(
        WinRMOptions(username=lab.winrm_username, password=lab.winrm_password),
        nodes=NODES,
        addresses=fleet.addresses(),
    )
    try:
        evaluation = scenario.collect(extra=[winrm], edit=local_agent_only)
    finally:
        winrm.close()
    # svc-LocalAgent$ (refName gmsaLocalAgent in ADServiceAccounts) still reads it; an unknown refName asks nothing.
    assert findings(evaluation, RULE) == []
