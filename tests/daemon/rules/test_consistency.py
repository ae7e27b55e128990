"""cert-inconsistent-across-nodes and self-signed-in-production."""

from __future__ import annotations

from collectors.model import CertReference, Generation, Observation, Severity
from simulator.pki import days, make_certificate, pfx_bytes, rsa_key
from tests.daemon.scenarios import Scenario, findings, static_source

RULE = "cert-inconsistent-across-nodes"
SF_NODES = ("ORCH1", "ORCH2", "ORCH3", "AOS1", "AOS2", "AOS3", "BI1", "MR1")


def _stray_star(scenario: Scenario, nodes: tuple[str, ...]) -> str:
    """A renewed *.contoso.lab certificate nobody configured, imported on some nodes."""
    lab = scenario.lab
    issued = make_certificate(
        "*.contoso.lab",
        not_before=days(scenario.now, -2),
        not_after=days(scenario.now, 365),
        key=rsa_key("stray-star"),
        issuer=lab.ca,
        dns_names=("*.contoso.lab",),
    )
    data = pfx_bytes(issued, lab.password.encode())
    for node in nodes:
        (lab.certs_dir / node / "star-renewed.pfx").write_bytes(data)
    return issued.thumbprint


def test_consistent_nodes(scenario: Scenario) -> None:
    assert findings(scenario.collect(), RULE) == []


def test_one_node_holds_a_different_certificate_of_the_role(scenario: Scenario) -> None:
    stray = _stray_star(scenario, ("AOS3",))
    (finding,) = findings(scenario.collect(), RULE)
    assert (finding.role, finding.thumbprint, finding.node) == ("ServiceFabric", stray, "AOS3")
    assert finding.severity is Severity.WARNING and "no configuration names" in finding.message
    assert "AOS1, AOS2" in finding.message


def test_the_same_extra_certificate_everywhere_is_consistent(scenario: Scenario) -> None:
    _stray_star(scenario, SF_NODES)
    assert findings(scenario.collect(), RULE) == []


def _runtime_config(scenario: Scenario, values: dict[str, str]):  # type: ignore[no-untyped-def]
    """Per-node AXSF configuration references, as a node source reports them."""
    observations = {
        node: Observation(
            references=(
                CertReference(
                    "DataEncryption",
                    thumbprint,
                    Generation.NEW,
                    "AXSF DataAccess.DataEncryptionCertificateThumbprint",
                    "winrm",
                    node,
                ),
            )
        )
        for node, thumbprint in values.items()
    }
    return static_source("winrm", observations)


def test_several_certificates_in_one_place_are_not_an_inconsistency(scenario: Scenario) -> None:
    """One node whose setting lists two certificates (a rollover pair) is not a mismatch between nodes."""
    new = scenario.lab.cert("DataEncryption", "new").thumbprint
    old = scenario.lab.cert("DataEncryption", "old").thumbprint
    refs = tuple(
        CertReference(
            "DataEncryption", t, Generation.NEW, "AXSF DataAccess.DataEncryptionCertificateThumbprint", "winrm", "AOS1"
        )
        for t in (new, old)
    )
    source = static_source("winrm", {"AOS1": Observation(references=refs)})
    assert findings(scenario.collect(extra=[source]), RULE) == []


def test_per_node_configuration_that_disagrees(scenario: Scenario) -> None:
    new = scenario.lab.cert("DataEncryption", "new").thumbprint
    old = scenario.lab.cert("DataEncryption", "old").thumbprint
    same = scenario.collect(extra=[_runtime_config(scenario, {"AOS1": new, "AOS2": new, "AOS3": new})])
    assert findings(same, RULE) == []
    mixed = scenario.collect(extra=[_runtime_config(scenario, {"AOS1": new, "AOS2": new, "AOS3": old})])
    (finding,) = findings(mixed, RULE)
    assert finding.role == "DataEncryption" and f"{old} on AOS3" in finding.message


def _self_signed_ssrs(scenario: Scenario) -> str:
    """An SSRS HTTPS certificate made with New-SelfSignedCertificate instead of the CA, and configured."""
    lab = scenario.lab
    issued = make_certificate(
        "bi1.contoso.lab",
        not_before=days(scenario.now, -1),
        not_after=days(scenario.now, 365),
        key=rsa_key("ssrs-self-signed"),
        dns_names=("bi1.contoso.lab",),
    )
    (lab.certs_dir / "BI1" / "SSRSHTTPS-new.pfx").write_bytes(pfx_bytes(issued, lab.password.encode()))
    scenario.set_template_thumbprint(lab.infrastructure, "SSRSHTTPS", issued.thumbprint)
    return issued.thumbprint


def test_self_signed_certificate_in_production(scenario: Scenario) -> None:
    thumbprint = _self_signed_ssrs(scenario)
    (finding,) = findings(scenario.collect(production=True), "self-signed-in-production")
    assert (finding.role, finding.thumbprint, finding.severity) == ("SSRSHTTPS", thumbprint, Severity.WARNING)
    assert finding.step == "certs-generated"


def test_self_signed_outside_production_or_for_allowed_roles(scenario: Scenario) -> None:
    # The lab's DataEncryption, DataSigning, encipherment, session and RSAT certificates are self-signed.
    assert findings(scenario.collect(production=True), "self-signed-in-production") == []
    _self_signed_ssrs(scenario)
    assert findings(scenario.collect(), "self-signed-in-production") == []
