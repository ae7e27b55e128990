"""Key ACLs through groups: local groups the node lists, well-known groups, and "unknown" where it cannot tell.

The nodes are simulated WinRM nodes read by the real collector; their key files and local groups are
set in node.json the way inventory.ps1 would report them (Get-LocalGroupMember -SID).
"""

from __future__ import annotations

from collectors.model import Severity
from simulator.labmodel import LAB_DOMAIN_SID
from simulator.winrm import SimulatedFleet
from simulator.winrm.keyfiles import ADMINISTRATORS, READ, SYSTEM
from simulator.winrm.nodefile import key_acl, set_key_acl, update_node_facts
from tests.daemon.rules.test_keyacl_rules import RULE, collect, fleet, revoke, step
from tests.daemon.scenarios import Scenario, findings

__all__ = ["fleet"]  # the fixture, used by name below

UNVERIFIED = "private-key-acl-unverified"
AXSF = (f"{LAB_DOMAIN_SID}-1106", "CONTOSO\\svc-AXSF$")
KEY_ADMINS = (f"{LAB_DOMAIN_SID}-3001", "CONTOSO\\D365 Key Readers")
DOMAIN_ADMINS = (f"{LAB_DOMAIN_SID}-512", "CONTOSO\\Domain Admins")
LOCAL_READERS = ("S-1-5-21-1-2-3-1010", "AOS2\\CertKeyReaders")


def _axsf_only_through(scenario: Scenario, group: tuple[str, str]) -> str:
    """The new DataEncryption key on AOS2 grants Read to `group` instead of the gMSA; the thumbprint."""
    thumbprint = revoke(scenario, "AOS2", "DataEncryption", "new", AXSF[1])
    folder = scenario.lab.certs_dir / "AOS2"
    set_key_acl(folder, thumbprint, [*key_acl(folder, thumbprint), [*group, READ, 0]])
    return thumbprint


BUILTIN_ADMIN = ["S-1-5-21-1-2-3-500", "AOS2\\Administrator", "User"]


def _groups(scenario: Scenario, **groups: list[list[str]]) -> None:
    """AOS2's local groups (SIDs with _ for -); Administrators holds the built-in Administrator unless given."""
    listed = {ADMINISTRATORS[0]: [BUILTIN_ADMIN]} | {k.replace("_", "-"): v for k, v in groups.items()}
    update_node_facts(scenario.lab.certs_dir / "AOS2", local_groups=listed)


def test_the_gmsa_reads_through_a_local_group_the_node_lists(scenario: Scenario, fleet: SimulatedFleet) -> None:
    _axsf_only_through(scenario, LOCAL_READERS)
    _groups(scenario, **{LOCAL_READERS[0].replace("-", "_"): [[*AXSF, "User"]]})
    evaluation = collect(scenario, fleet)
    assert findings(evaluation, RULE) == [] and findings(evaluation, UNVERIFIED) == []
    assert step(evaluation, "certs-installed")[0] == "done"


def test_a_local_group_without_the_gmsa_is_missing_not_unknown(scenario: Scenario, fleet: SimulatedFleet) -> None:
    thumbprint = _axsf_only_through(scenario, LOCAL_READERS)
    _groups(scenario, **{LOCAL_READERS[0].replace("-", "_"): [BUILTIN_ADMIN]})
    evaluation = collect(scenario, fleet)
    (finding,) = findings(evaluation, RULE)
    assert (finding.node, finding.thumbprint, finding.severity) == ("AOS2", thumbprint, Severity.CRITICAL)
    assert findings(evaluation, UNVERIFIED) == []


def test_through_a_domain_group_it_is_unknown(scenario: Scenario, fleet: SimulatedFleet) -> None:
    # A domain group on the key: its members are in Active Directory, which certmon does not read.
    thumbprint = _axsf_only_through(scenario, KEY_ADMINS)
    evaluation = collect(scenario, fleet)
    assert findings(evaluation, RULE) == [], "not reported missing: it may be a member"
    (finding,) = findings(evaluation, UNVERIFIED)
    assert (finding.node, finding.thumbprint, finding.severity) == ("AOS2", thumbprint, Severity.WARNING)
    assert "cannot tell whether CONTOSO\\svc-AXSF$ (only possibly through CONTOSO\\D365 Key Readers" in finding.message
    status, detail, evidence = step(evaluation, "certs-installed")
    assert (status, detail) == ("unknown", "1 new private keys the service accounts may not read")
    assert evidence[0].startswith(f"AOS2: DataEncryption {thumbprint[:8]}: cannot tell whether CONTOSO\\svc-AXSF$")


def test_domain_admins_inside_administrators_is_unknown(scenario: Scenario, fleet: SimulatedFleet) -> None:
    # The usual domain-joined server: Domain Admins is a member of the local Administrators group.
    thumbprint = revoke(scenario, "AOS2", "DataEncryption", "new", AXSF[1])
    _groups(scenario, S_1_5_32_544=[BUILTIN_ADMIN, [*DOMAIN_ADMINS, "Group"]])
    evaluation = collect(scenario, fleet)
    assert findings(evaluation, RULE) == []
    (finding,) = findings(evaluation, UNVERIFIED)
    assert finding.thumbprint == thumbprint
    assert "CONTOSO\\Domain Admins (a group or account the node did not list) in BUILTIN\\Administrators" in (
        finding.message
    )


def test_the_gmsa_in_administrators_reads_the_key(scenario: Scenario, fleet: SimulatedFleet) -> None:
    revoke(scenario, "AOS2", "DataEncryption", "new", AXSF[1])
    _groups(scenario, S_1_5_32_544=[BUILTIN_ADMIN, [*AXSF, "User"]])
    evaluation = collect(scenario, fleet)
    assert findings(evaluation, RULE) == [] and findings(evaluation, UNVERIFIED) == []


def test_well_known_groups(scenario: Scenario, fleet: SimulatedFleet) -> None:
    # Authenticated Users holds every domain account (the gMSA); Everyone holds every account.
    _axsf_only_through(scenario, ("S-1-5-11", "NT AUTHORITY\\Authenticated Users"))
    folder = scenario.lab.certs_dir / "ORCH1"
    network_service = scenario.lab.cert("ServiceFabric", "new").thumbprint
    rules = [r for r in key_acl(folder, network_service) if r[0] != "S-1-5-20"]
    # NETWORK SERVICE through Authenticated Users is not documented: unknown, not missing.
    set_key_acl(folder, network_service, [*rules, ["S-1-5-11", "NT AUTHORITY\\Authenticated Users", READ, 0]])
    evaluation = collect(scenario, fleet)
    assert findings(evaluation, RULE) == []
    (finding,) = findings(evaluation, UNVERIFIED)
    assert (finding.node, finding.thumbprint) == ("ORCH1", network_service)
    assert "whether it holds S-1-5-20 is not documented" in finding.message
    set_key_acl(folder, network_service, [*rules, ["S-1-1-0", "Everyone", READ, 0]])
    evaluation = collect(scenario, fleet)
    assert findings(evaluation, RULE) == [] and findings(evaluation, UNVERIFIED) == []


def test_system_reads_through_administrators(scenario: Scenario, fleet: SimulatedFleet) -> None:
    # The LocalSystem account's token holds BUILTIN\Administrators (Microsoft, "LocalSystem Account").
    def system_must_read(settings):  # type: ignore[no-untyped-def]
        settings.rules.key_readers = {"DataEncryption": [SYSTEM[0]]}

    thumbprint = scenario.lab.cert("DataEncryption", "new").thumbprint
    folder = scenario.lab.certs_dir / "AOS2"
    set_key_acl(folder, thumbprint, [[*ADMINISTRATORS, READ, 0]])
    evaluation = collect(scenario, fleet, edit=system_must_read)
    assert findings(evaluation, RULE) == [] and findings(evaluation, UNVERIFIED) == []


def test_a_group_the_node_cannot_list_is_unknown(scenario: Scenario, fleet: SimulatedFleet) -> None:
    # Get-LocalGroupMember fails on a group with a member it cannot resolve: the script leaves it out.
    thumbprint = _axsf_only_through(scenario, LOCAL_READERS)
    _groups(scenario, **{LOCAL_READERS[0].replace("-", "_"): {"error": "Failed to compare two elements"}})  # type: ignore[arg-type]
    evaluation = collect(scenario, fleet)
    assert findings(evaluation, RULE) == []
    (finding,) = findings(evaluation, UNVERIFIED)
    assert finding.thumbprint == thumbprint
    assert "AOS2\\CertKeyReaders (a group or account the node did not list)" in finding.message
