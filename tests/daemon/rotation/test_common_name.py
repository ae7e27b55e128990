"""A cluster declared by common name (Microsoft's production recommendation): tracked, not "partly staged".

Regression for issue 16, gate 4: such a cluster got "partly staged; fix it by hand" for a valid
file. Its rotation is a new certificate with the same common name on every node, from an issuer
the configuration allows; the checklist's sf-staged follows that, and the thumbprint remediations
say why they do not apply instead of calling the file broken.
"""

from __future__ import annotations

from typing import Any

from collectors.clusterconfig import load_cluster_config
from daemon.app import Daemon
from daemon.rotation import StepStatus
from remediations.servicefabric import StageRotation
from tests.daemon.scenarios import Scenario
from tests.remediations.conftest import lab_context


def _by_common_name(scenario: Scenario, common_name: str, issuer_store: str) -> None:
    client = scenario.lab.cert("ServiceFabricClient", "new").thumbprint

    def change(document: Any) -> None:
        declared = {"CommonNames": [{"CertificateCommonName": common_name}], "X509StoreName": "My"}
        stores = [{"IssuerCommonName": issuer_store, "X509StoreNames": "Root"}]
        document["properties"]["security"]["CertificateInformation"] = {
            "ClusterCertificateCommonNames": declared,
            "ClusterCertificateIssuerStores": stores,
            "ServerCertificateCommonNames": declared,
            "ServerCertificateIssuerStores": stores,
            "ClientCertificateThumbprints": [{"CertificateThumbprint": client, "IsAdmin": True}],
        }

    scenario.edit_json(scenario.lab.cluster_config, change)


def test_a_common_name_cluster_is_staged_by_the_new_certificate(scenario: Scenario) -> None:
    new = scenario.lab.cert("ServiceFabric", "new").issued.cert
    cn = new.subject.rfc4514_string().split("CN=")[1].split(",")[0]
    issuer = scenario.lab.ca.cert.subject.rfc4514_string().split("CN=")[1].split(",")[0]
    _by_common_name(scenario, cn, issuer)
    assert load_cluster_config(scenario.lab.cluster_config).by_common_name
    state = scenario.collect().checklist.state("sf-staged")
    assert state is not None and state.status is StepStatus.DONE, state
    assert "declared by common name" in state.detail
    assert any(f"carries {cn} from an allowed issuer" in line for line in state.evidence)


def test_a_new_certificate_with_another_name_or_issuer_is_pending(scenario: Scenario) -> None:
    _by_common_name(scenario, "sf.other.contoso.lab", "Some Other CA")
    state = scenario.collect().checklist.state("sf-staged")
    assert state is not None and state.status is StepStatus.PENDING
    assert "which the configuration does not declare" in state.detail


def test_stage_rotation_says_why_it_does_not_apply_without_calling_the_file_broken(scenario: Scenario) -> None:
    new = scenario.lab.cert("ServiceFabric", "new").issued.cert
    cn = new.subject.rfc4514_string().split("CN=")[1].split(",")[0]
    _by_common_name(scenario, cn, "")
    instance = Daemon(scenario.settings(), clock=lambda: scenario.now)
    try:
        instance.collect_once()
        checks = StageRotation().preconditions(lab_context(instance))
    finally:
        instance.stop()
    failed = {c.name: c.detail for c in checks if not c.ok}
    assert "certificates declared by thumbprint" in failed
    assert "common name" in failed["certificates declared by thumbprint"]
    assert not any("partly staged" in detail for detail in failed.values()), failed
