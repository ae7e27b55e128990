"""cert-missing-on-node, private-key-missing, cng-key-on-sf-cert: each triggered next to a healthy neighbour."""

from __future__ import annotations

import dataclasses

from collectors.model import Observation, Severity
from tests.daemon.scenarios import Scenario, findings, static_source


def test_healthy_lab_has_no_presence_findings(scenario: Scenario) -> None:
    evaluation = scenario.collect()
    for rule in ("cert-missing-on-node", "private-key-missing", "cng-key-on-sf-cert"):
        assert findings(evaluation, rule) == [], rule


def test_new_certificate_missing_on_one_node(scenario: Scenario) -> None:
    scenario.remove("AOS2", "DataEncryption", "new")
    (missing,) = findings(scenario.collect(), "cert-missing-on-node")
    new_de = scenario.lab.cert("DataEncryption", "new").thumbprint
    assert (missing.node, missing.role, missing.thumbprint) == ("AOS2", "DataEncryption", new_de)
    assert missing.severity is Severity.WARNING, "nothing running uses it yet"
    assert (missing.source, missing.target, missing.step) == ("certfolder", "AOS2", "certs-installed")
    assert "AOS nodes need it" in missing.message


def test_certificate_the_cluster_already_uses_is_critical(scenario: Scenario) -> None:
    scenario.remove("BI1", "ServiceFabric", "new")
    (missing,) = findings(scenario.collect(), "cert-missing-on-node")
    assert (missing.node, missing.role, missing.severity) == ("BI1", "ServiceFabric", Severity.CRITICAL)
    assert "ClusterConfig.json" in missing.message


def test_a_node_that_does_not_need_the_role_is_not_flagged(scenario: Scenario) -> None:
    # DataEncryption lives on AOS nodes only; an extra copy on BI1 going away is not "missing".
    scenario.install("BI1", "DataEncryption", "new")
    scenario.collect()
    scenario.remove("BI1", "DataEncryption", "new")
    assert findings(scenario.collect(), "cert-missing-on-node") == []


def test_unread_nodes_are_unknown_not_missing(scenario: Scenario) -> None:
    def only_aos1(settings):  # type: ignore[no-untyped-def]
        settings.sources.certfolder.nodes = ["AOS1"]

    scenario.remove("AOS2", "DataEncryption", "new")
    assert findings(scenario.collect(edit=only_aos1), "cert-missing-on-node") == []


def test_certificate_without_private_key(scenario: Scenario) -> None:
    cert = scenario.lab.cert("SessionAuthentication", "new")
    scenario.remove("AOS3", "SessionAuthentication", "new")
    (scenario.lab.certs_dir / "AOS3" / "SessionAuthentication-new.cer").write_bytes(cert.issued.der)
    evaluation = scenario.collect()
    (nokey,) = findings(evaluation, "private-key-missing")
    assert (nokey.node, nokey.role, nokey.thumbprint) == ("AOS3", "SessionAuthentication", cert.thumbprint)
    assert nokey.severity is Severity.WARNING and "without its private key" in nokey.message
    assert findings(evaluation, "cert-missing-on-node") == [], "present, only the key is missing"


def test_cng_key_on_a_service_fabric_certificate(scenario: Scenario) -> None:
    def winrm(provider_of: dict[str, str]):  # type: ignore[no-untyped-def]
        observations = {}
        for node in ("AOS1", "ORCH1"):
            certs = tuple(
                dataclasses.replace(obs, key_provider=provider_of.get(f"{node}/{obs.thumbprint}", "capi"))
                for obs in scenario.observations(node)
            )
            observations[node] = Observation(certificates=certs)
        return static_source("winrm", observations)

    sf_new = scenario.lab.cert("ServiceFabric", "new").thumbprint
    healthy = scenario.collect(extra=[winrm({})])
    assert findings(healthy, "cng-key-on-sf-cert") == []
    evaluation = scenario.collect(extra=[winrm({f"ORCH1/{sf_new}": "cng"})])
    (cng,) = findings(evaluation, "cng-key-on-sf-cert")
    assert (cng.node, cng.role, cng.thumbprint, cng.source) == ("ORCH1", "ServiceFabric", sf_new, "winrm")
    assert cng.severity is Severity.CRITICAL, "the cluster configuration already names it"
    assert "certutil -csp" in cng.message


def test_cng_key_on_a_role_outside_the_csp_list_is_fine(scenario: Scenario) -> None:
    ssrs = scenario.lab.cert("SSRSHTTPS", "new").thumbprint
    certs = tuple(
        dataclasses.replace(obs, key_provider="cng" if obs.thumbprint == ssrs else "capi")
        for obs in scenario.observations("BI1")
    )
    evaluation = scenario.collect(extra=[static_source("winrm", {"BI1": Observation(certificates=certs)})])
    assert findings(evaluation, "cng-key-on-sf-cert") == []


def test_regression_a_disabled_node_type_is_not_probed(scenario: Scenario) -> None:
    # The lab's template lists BatchOnlyAOSNodeType disabled="true" with placeholder VMs, as
    # Microsoft's does: its VMs hold nothing and are not nodes, so nothing is "missing" there.
    evaluation = scenario.collect()
    assert [f for f in findings(evaluation, "cert-missing-on-node") if f.node.lower().startswith("batchaos")] == []
    assert not any(f.node.lower().startswith("batchaos") for f in evaluation.findings)


def test_regression_report_servers_are_purpose_bi(scenario: Scenario) -> None:
    # Microsoft's template names the report server purpose BI; the default node roles use it.
    scenario.remove("BI1", "SSRSHTTPS", "new")
    (missing,) = findings(scenario.collect(), "cert-missing-on-node")
    assert (missing.node, missing.role) == ("BI1", "SSRSHTTPS")


def test_regression_the_client_certificate_is_needed_on_orchestrator_nodes_only(scenario: Scenario) -> None:
    # Not every Service Fabric node holds the client certificate (docs/node-roles.md).
    scenario.remove("AOS1", "ServiceFabricClient", "new")
    scenario.remove("ORCH1", "ServiceFabricClient", "new")
    missing = findings(scenario.collect(), "cert-missing-on-node")
    assert [(f.node, f.role) for f in missing] == [("ORCH1", "ServiceFabricClient")]
