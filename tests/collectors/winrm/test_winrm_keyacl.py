"""Private-key access over real WinRM: the inventory reports each key file's ACL in the same command."""

from __future__ import annotations

import json

import pytest

from collectors.base import Deadline
from collectors.errors import CollectorError, Reason
from collectors.winrm import WinRMCollector, WinRMOptions
from collectors.winrm.collector import NodeFacts
from collectors.winrm.keyacl import CertKeyAccess
from collectors.winrm.output import parse_inventory
from simulator.lab import Lab, build_lab
from simulator.winrm import SimulatedFleet
from simulator.winrm.keyfiles import FULL_CONTROL, GENERIC_READ, IMPORTED, NETWORK_SERVICE, READ
from simulator.winrm.nodefile import CNG_DEFAULT, key_acl, set_key_acl, set_key_provider

AXSF = "CONTOSO\\svc-AXSF$"


def _without(rules: list[list[object]], account: str) -> list[list[object]]:
    return [r for r in rules if r[1] != account]


@pytest.fixture(scope="module")
def lab(tmp_path_factory: pytest.TempPathFactory) -> Lab:
    """A lab at stage `installed` whose AOS1 has four unusual key ACLs."""
    built = build_lab(tmp_path_factory.mktemp("keyacl") / "lab", port=0)
    folder = built.certs_dir / "AOS1"
    granted = key_acl(folder, built.cert("DataEncryption", "new").thumbprint)
    # The gMSA's grant forgotten on the new DataEncryption certificate.
    set_key_acl(folder, built.cert("DataEncryption", "new").thumbprint, _without(granted, AXSF))
    # NETWORK SERVICE allowed, then denied: a deny rule wins.
    deny = [*NETWORK_SERVICE, READ, 1]
    set_key_acl(folder, built.cert("DataSigning", "new").thumbprint, [*granted, deny])
    # GENERIC_READ (negative as PowerShell's [int] prints it) grants reading; a CNG key lives in Crypto\Keys.
    generic = [*_without(granted, AXSF), [granted[-1][0], AXSF, GENERIC_READ, 0]]
    set_key_acl(folder, built.cert("ServiceFabric", "new").thumbprint, generic)
    set_key_provider(folder, built.cert("ServiceFabric", "new").thumbprint, CNG_DEFAULT)
    # A key file the inventory account may not open.
    set_key_acl(folder, built.cert("SessionAuthentication", "new").thumbprint, {"error": "Keyset does not exist"})
    return built


def _collect(lab: Lab) -> NodeFacts:
    with SimulatedFleet.from_lab(lab, names=["AOS1"]) as fleet:
        options = WinRMOptions(username=lab.winrm_username, password=lab.winrm_password)
        collector = WinRMCollector(options, nodes=["AOS1"], addresses=fleet.addresses())
        try:
            observation = collector.collect("AOS1", Deadline.after(10))
            # The ACLs came with the inventory: one command, the same four encrypted messages as before.
            assert fleet.counters()["AOS1"]["encrypted"] == 4
        finally:
            collector.close()
    assert isinstance(observation.facts, NodeFacts)
    problems = [p.message for p in observation.problems]
    session = lab.cert("SessionAuthentication", "new").thumbprint
    assert problems == [f"AOS1 LocalMachine\\My {session}: cannot read the private key's ACL: Keyset does not exist"]
    return observation.facts


def _by_thumbprint(facts: NodeFacts) -> dict[str, CertKeyAccess]:
    return {e.thumbprint: e for e in facts.key_access if e.store == "LocalMachine\\My"}


def test_key_readers_are_reported_per_certificate(lab: Lab) -> None:
    facts = _collect(lab)
    access = _by_thumbprint(facts)
    # Every certificate with a key has an entry; Root holds none with a key.
    assert {e.store for e in facts.key_access} == {"LocalMachine\\My"}
    healthy = access[lab.cert("DataEncryption", "old").thumbprint]
    accounts = {account for _, account in healthy.readers}
    assert accounts == {
        "NT AUTHORITY\\SYSTEM",
        "BUILTIN\\Administrators",
        "NT AUTHORITY\\NETWORK SERVICE",
        AXSF,
        "CONTOSO\\svc-LocalAgent$",
    }
    assert healthy.file.startswith("C:\\ProgramData\\Microsoft\\Crypto\\RSA\\MachineKeys\\")
    assert AXSF not in {a for _, a in access[lab.cert("DataEncryption", "new").thumbprint].readers}


def test_deny_generic_read_cng_and_unreadable(lab: Lab) -> None:
    access = _by_thumbprint(_collect(lab))
    signing = access[lab.cert("DataSigning", "new").thumbprint]
    assert "S-1-5-20" not in {sid for sid, _ in signing.readers} and signing.error == ""
    sf = access[lab.cert("ServiceFabric", "new").thumbprint]
    assert sf.file.startswith("C:\\ProgramData\\Microsoft\\Crypto\\Keys\\")
    assert AXSF in {a for _, a in sf.readers}
    unreadable = access[lab.cert("SessionAuthentication", "new").thumbprint]
    assert unreadable.readers == () and unreadable.error == "Keyset does not exist"


def test_metrics_name_each_reader_and_unread_acls(lab: Lab) -> None:
    facts = _collect(lab)
    readers = next(m for m in WinRMCollector.metrics if m.name == "certmon_cert_key_readers_info")
    read = next(m for m in WinRMCollector.metrics if m.name == "certmon_cert_key_acl_read")
    new_de = lab.cert("DataEncryption", "new").thumbprint
    rows = [labels for labels, _ in readers.samples(facts, "AOS1") if labels[3] == new_de]
    assert {r[5] for r in rows} == {"S-1-5-18", "S-1-5-32-544", "S-1-5-20", rows[-1][5]} and len(rows) == 4
    flags = {labels[3]: value for labels, value in read.samples(facts, "AOS1")}
    assert flags[lab.cert("SessionAuthentication", "new").thumbprint] == 0.0 and flags[new_de] == 1.0


def _document(k: object) -> bytes:
    cert = {"d": "MA==", "h": True, "t": 24, "p": "x", "k": k}
    return json.dumps({"v": 2, "stores": [{"s": "LocalMachine\\My", "c": [cert]}], "sql": [], "n": 1}).encode()


@pytest.mark.parametrize(
    ("k", "expected"),
    [
        ([], "k is not an object"),
        ({"f": "x"}, "k.a is not a list"),
        ({"f": "x", "a": [["S-1-5-20", "", 1]]}, "k.a[0] is not [SID, account, rights, type]"),
        ({"f": "x", "a": [["S-1-5-20", "", "Read", 0]]}, "not a 32-bit access mask"),
        ({"f": "x", "a": [["S-1-5-20", "", 1, 2]]}, "access type 2"),
        ({"f": "x", "a": [["S-1-5-20", "", 1, 0]] * 65}, "more than 64"),
        ({"f": "x" * 600, "a": []}, "k.f is not a string of at most 512"),
    ],
)
def test_malformed_key_acl_output_is_bad_output(k: object, expected: str) -> None:
    with pytest.raises(CollectorError) as caught:
        parse_inventory("AOS1", _document(k))
    assert caught.value.reason is Reason.BAD_OUTPUT and expected in str(caught.value)


def test_rights_are_masks_and_full_control_reads() -> None:
    rules = [[*IMPORTED[0][:2], FULL_CONTROL, 0], ["S-1-5-21-1-2-3-500", "C\\w", 0x116, 0]]
    inventory = parse_inventory("AOS1", _document({"f": "C:\\k", "a": rules}))
    access = inventory.stores[0].certificates[0].key_access
    assert access is not None and access.readers() == (("S-1-5-18", "NT AUTHORITY\\SYSTEM"),)
