"""The WinRM collector through real pywinrm against simulated nodes: inventory, reuse, recovery."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
from winrm import transport as winrm_transport

from collectors.base import Deadline
from collectors.errors import CollectorError, Reason
from collectors.winrm import WinRMCollector, WinRMOptions
from collectors.winrm.collector import NodeFacts, split_address
from simulator.lab import Lab, build_lab
from simulator.winrm import SimulatedFleet
from simulator.winrm.nodefile import CNG_DEFAULT, set_key_provider

MakeCollector = Callable[..., WinRMCollector]


def options_for(lab: Lab) -> WinRMOptions:
    """NTLM with the lab's account."""
    return WinRMOptions(username=lab.winrm_username, password=lab.winrm_password)


def installed(lab: Lab, node: str) -> set[str]:
    """Thumbprints the lab put in a node's My store."""
    generations = ("old",) if lab.stage == "before" else ("old", "new")
    return {c.thumbprint for (_, g), c in lab.certs.items() if g in generations and node in c.nodes}


def test_every_node_reports_its_stores_over_encrypted_ntlm(
    shared_lab: Lab, fleet: SimulatedFleet, make_collector: MakeCollector
) -> None:
    collector = make_collector()
    for node in collector.targets():
        observation = collector.collect(node, Deadline.after(10))
        mine = {o.thumbprint for o in observation.certificates if o.store == "LocalMachine\\My"}
        roots = {o.thumbprint for o in observation.certificates if o.store == "LocalMachine\\Root"}
        assert mine == installed(shared_lab, node)
        assert roots == {shared_lab.ca.thumbprint}
        assert observation.problems == ()
        for item in observation.certificates:
            assert item.source == "winrm" and item.node == node
            assert item.location == f"Cert:\\{item.store}\\{item.thumbprint}"
            if item.store == "LocalMachine\\My":
                assert item.has_private_key is True and item.key_provider == "capi"
            else:
                assert item.has_private_key is False and item.key_provider is None
    counters = fleet.counters()
    # Every SOAP message travelled sealed: message encryption, not just an NTLM logon.
    assert all(c["encrypted"] == 4 and c["handshakes"] == 1 for c in counters.values())


def test_dates_and_thumbprints_come_from_the_der(shared_lab: Lab, make_collector: MakeCollector) -> None:
    observation = make_collector().collect("AOS1", Deadline.after(10))
    star = shared_lab.cert("ServiceFabric", "new")
    found = next(o for o in observation.certificates if o.thumbprint == star.thumbprint)
    assert found.certificate.not_after == star.issued.cert.not_valid_after_utc
    assert found.certificate.subject_cn == "*.contoso.lab"


def test_sql_node_reports_the_tls_thumbprint_of_its_instance(shared_lab: Lab, make_collector: MakeCollector) -> None:
    collector = make_collector()
    sql = collector.collect("SQL1", Deadline.after(10)).facts
    assert isinstance(sql, NodeFacts)
    assert [(s.instance, s.thumbprint) for s in sql.sql_instances] == [
        ("MSSQLSERVER", shared_lab.current("SQLCluster").thumbprint)
    ]
    aos = collector.collect("AOS1", Deadline.after(10)).facts
    assert isinstance(aos, NodeFacts) and aos.sql_instances == ()


def test_steady_cycle_costs_three_requests_and_no_handshake(
    fleet: SimulatedFleet, make_collector: MakeCollector
) -> None:
    collector = make_collector()
    node = fleet["AOS2"]
    collector.collect("AOS2", Deadline.after(10))
    first = node.counters.snapshot()
    # Logon (3 legs: anonymous, negotiate, authenticate) + Create + Command + Receive + Signal.
    assert first["requests"] == 7 and first["handshakes"] == 1 and first["connections"] == 1
    for _ in range(5):
        node.counters.reset()
        collector.collect("AOS2", Deadline.after(10))
        cycle = node.counters.snapshot()
        assert cycle["requests"] == 3
        assert cycle["handshakes"] == 0 and cycle["connections"] == 0
        assert cycle["actions"] == {"Command": 1, "Receive": 1, "Signal": 1}
    assert len(node.wsman.shells) == 1


def test_close_deletes_the_shell(fleet: SimulatedFleet, make_collector: MakeCollector) -> None:
    collector = make_collector()
    collector.collect("BI1", Deadline.after(10))
    assert len(fleet["BI1"].wsman.shells) == 1
    collector.close()
    assert fleet["BI1"].wsman.shells == {}


def test_lost_shell_is_replaced_within_the_cycle(fleet: SimulatedFleet, make_collector: MakeCollector) -> None:
    collector = make_collector()
    collector.collect("MR1", Deadline.after(10))
    fleet["MR1"].restart_service()  # the shell is gone, as after Restart-Service WinRM or an idle timeout
    observation = collector.collect("MR1", Deadline.after(10))
    assert observation.certificates
    assert fleet["MR1"].counters.snapshot()["actions"]["Create"] == 2


def test_operations_quota_recycles_the_shell(fleet: SimulatedFleet, make_collector: MakeCollector) -> None:
    # Windows does not give operations back on Terminate; a long-lived shell eventually hits the quota.
    fleet["ORCH1"].configure(max_operations_per_shell=2)
    collector = make_collector()
    for _ in range(5):
        assert collector.collect("ORCH1", Deadline.after(10)).certificates
    actions = fleet["ORCH1"].counters.snapshot()["actions"]
    assert actions["Create"] == 3 and actions["Delete"] == 2
    assert len(fleet["ORCH1"].wsman.shells) == 1


def test_server_closing_idle_connections_costs_one_clean_logon(
    fleet: SimulatedFleet, make_collector: MakeCollector
) -> None:
    node = fleet["ORCH2"]
    collector = make_collector()
    collector.collect("ORCH2", Deadline.after(10))
    node.drop_connections()  # HTTP.sys closes keep-alive connections idle for 2 minutes
    node.counters.reset()
    collector.collect("ORCH2", Deadline.after(10))
    cycle = node.counters.snapshot()
    # A new logon, the same shell, and no request wasted on the dead connection.
    assert cycle["handshakes"] == 1 and cycle["auth_failures"] == 0
    assert cycle["requests"] == 6 and "Create" not in cycle["actions"]


def test_cng_key_is_reported_as_cng(tmp_path: Path) -> None:
    lab = build_lab(tmp_path / "lab", port=0, cng_roles=("ServiceFabric",))
    extra = lab.cert("DataEncryption", "old")
    set_key_provider(lab.certs_dir / "AOS1", extra.thumbprint, "Microsoft Platform Crypto Provider")
    with SimulatedFleet.from_lab(lab, names=["AOS1"]) as fleet:
        collector = WinRMCollector(
            options_for(lab),
            nodes=["AOS1"],
            addresses=fleet.addresses(),
        )
        try:
            observation = collector.collect("AOS1", Deadline.after(10))
        finally:
            collector.close()
    kinds = {o.thumbprint: o.key_provider for o in observation.certificates}
    assert kinds[lab.cert("ServiceFabric", "new").thumbprint] == "cng"
    assert kinds[lab.cert("ServiceFabric", "old").thumbprint] == "cng"
    assert kinds[extra.thumbprint] == "cng"
    assert kinds[lab.cert("ServiceFabricClient", "new").thumbprint] == "capi"
    assert isinstance(observation.facts, NodeFacts)
    providers = {k.thumbprint: k.provider for k in observation.facts.key_providers}
    assert providers[lab.cert("ServiceFabric", "new").thumbprint] == CNG_DEFAULT
    samples = dict(WinRMCollector.metrics[0].samples(observation.facts, "AOS1"))
    assert any(labels[6] == "cng" and labels[3] == extra.thumbprint for labels in samples)


def test_regression_key_kind_follows_the_provider_type_not_the_name(tmp_path: Path) -> None:
    # dwProvType 0 is CNG whatever the provider is called; a CryptoAPI provider type is CAPI.
    lab = build_lab(tmp_path / "lab", port=0)
    sf = lab.cert("ServiceFabric", "new")
    encipherment = lab.cert("ServiceFabricEncryption", "new")
    set_key_provider(lab.certs_dir / "AOS1", sf.thumbprint, "Contoso HSM Cryptographic Provider", 1)
    set_key_provider(lab.certs_dir / "AOS1", encipherment.thumbprint, "Contoso HSM Key Storage", 0)
    with SimulatedFleet.from_lab(lab, names=["AOS1"]) as fleet:
        collector = WinRMCollector(options_for(lab), nodes=["AOS1"], addresses=fleet.addresses())
        try:
            observation = collector.collect("AOS1", Deadline.after(10))
        finally:
            collector.close()
    kinds = {o.thumbprint: o.key_provider for o in observation.certificates}
    assert kinds[sf.thumbprint] == "capi"
    assert kinds[encipherment.thumbprint] == "cng"
    assert kinds[lab.cert("DataEncryption", "new").thumbprint] == "capi"  # the lab's default CAPI provider
    assert isinstance(observation.facts, NodeFacts)
    providers = {k.thumbprint: k.provider for k in observation.facts.key_providers}
    assert providers[sf.thumbprint] == "Contoso HSM Cryptographic Provider"


def test_nodes_come_from_the_config_template(shared_lab: Lab) -> None:
    collector = WinRMCollector(options_for(shared_lab), nodes=["JUMP1"], config_template=shared_lab.infrastructure)
    assert list(collector.targets()) == ["JUMP1", *[n.name for n in shared_lab.nodes]]
    assert collector.endpoint("AOS1").url == "http://AOS1:5985/wsman"
    with_ips = WinRMCollector(
        options_for(shared_lab),
        config_template=shared_lab.infrastructure,
        use_template_addresses=True,
        addresses={"AOS2": "aos2.contoso.lab:15985"},
    )
    with_ips.targets()
    assert with_ips.endpoint("AOS1").url == f"http://{shared_lab.node('AOS1').ip_address}:5985/wsman"
    assert with_ips.endpoint("AOS2").url == "http://aos2.contoso.lab:15985/wsman"
    assert with_ips.endpoint("SQL1").host == "SQL1"  # SQLVM entries carry no address certmon reads


def test_unreadable_template_keeps_the_known_nodes(shared_lab: Lab, tmp_path: Path) -> None:
    template = tmp_path / "ConfigTemplate.xml"
    template.write_bytes((shared_lab.infrastructure / "ConfigTemplate.xml").read_bytes())
    collector = WinRMCollector(options_for(shared_lab), config_template=template)
    known = collector.targets()
    template.write_text("<Config>", encoding="utf-8")
    assert collector.targets() == known
    fresh = WinRMCollector(options_for(shared_lab), config_template=template)
    with pytest.raises(CollectorError) as caught:
        fresh.targets()
    assert caught.value.reason is Reason.PARSE_ERROR


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("aos1", ("aos1", 5985)),
        ("10.0.1.11:15985", ("10.0.1.11", 15985)),
        ("[fe80::1]:5986", ("fe80::1", 5986)),
        ("fe80::1", ("fe80::1", 5985)),
    ],
)
def test_split_address(text: str, expected: tuple[str, int]) -> None:
    assert split_address(text, 5985) == expected


@pytest.mark.parametrize("text", ["", ":5985", "aos1:http", "aos1:70000"])
def test_split_address_rejects_malformed(text: str) -> None:
    with pytest.raises(ValueError, match="address"):
        split_address(text, 5985)


@pytest.mark.skipif(winrm_transport.HAVE_KERBEROS, reason="a Kerberos package is installed here")
def test_kerberos_without_its_package_is_a_config_error(shared_lab: Lab) -> None:
    collector = WinRMCollector(WinRMOptions(transport="kerberos"), nodes=["AOS1"])
    with pytest.raises(CollectorError) as caught:
        collector.collect("AOS1", Deadline.after(5))
    assert caught.value.reason is Reason.CONFIG_ERROR
    assert "pykerberos" in caught.value.message


def test_output_larger_than_an_envelope_arrives_in_several_receives(tmp_path: Path) -> None:
    from datetime import timedelta

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.hazmat.primitives.serialization import Encoding
    from cryptography.x509.oid import NameOID

    lab = build_lab(tmp_path / "lab", port=0)
    folder = lab.certs_dir / "BI1"
    signer = ec.generate_private_key(ec.SECP256R1())
    subject_key = lab.ca.key.public_key()
    expected = set()
    for index in range(800):
        name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, f"extra-{index}.contoso.lab")])
        cert = (
            x509.CertificateBuilder()
            .subject_name(name)
            .issuer_name(name)
            .public_key(subject_key)
            .serial_number(index + 1)
            .not_valid_before(lab.now - timedelta(days=1))
            .not_valid_after(lab.now + timedelta(days=90))
            .sign(signer, hashes.SHA256())
        )
        (folder / f"extra-{index:03d}.cer").write_bytes(cert.public_bytes(Encoding.DER))
        expected.add(cert.fingerprint(hashes.SHA1()).hex().upper())
    with SimulatedFleet.from_lab(lab, names=["BI1"]) as fleet:
        collector = WinRMCollector(options_for(lab), nodes=["BI1"], addresses=fleet.addresses())
        try:
            observation = collector.collect("BI1", Deadline.after(20))
        finally:
            collector.close()
        receives = fleet["BI1"].counters.snapshot()["actions"]["Receive"]
    assert expected <= {o.thumbprint for o in observation.certificates}
    assert receives >= 2
