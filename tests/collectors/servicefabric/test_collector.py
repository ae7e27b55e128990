"""Collecting the lab's cluster through its simulated gateway, and the metrics both SF sources export."""

from __future__ import annotations

from datetime import datetime

import pytest
from prometheus_client import generate_latest
from prometheus_client.parser import text_string_to_metric_families

from collectors.base import Deadline
from collectors.errors import CollectorError, Reason
from collectors.model import Generation
from collectors.servicefabric.collector import ServiceFabricCollector
from collectors.servicefabric.model import GatewayFacts
from simulator.lab import Lab
from tests.sfkit import SfLab, sf_lab


def _collect(sf: SfLab, now: datetime, **options: object) -> tuple[GatewayFacts, object]:
    collector = ServiceFabricCollector(sf.config(), clock=lambda: now, **options)  # type: ignore[arg-type]
    observation = collector.collect("D365FOCluster", Deadline.after(20))
    assert isinstance(observation.facts, GatewayFacts)
    return observation.facts, observation


def test_the_running_cluster(sf: SfLab, now: datetime) -> None:
    sf.cluster.page_size = 1
    facts, observation = _collect(sf, now)
    lab = sf.lab
    old_sf, old_client = lab.cert("ServiceFabric", "old").thumbprint, lab.cert("ServiceFabricClient", "old").thumbprint
    assert (facts.config.version, facts.code_version) == ("2.0.0", "7.2.457.9590")
    assert [(c.kind, c.thumbprint, c.thumbprint_secondary) for c in facts.config.certificates] == [
        ("cluster", old_sf, ""),
        ("server", old_sf, ""),
        ("reverse_proxy", old_sf, ""),
    ]
    assert [(c.thumbprint, c.is_admin) for c in facts.config.clients] == [(old_client, True)]
    assert facts.upgrade_status is not None and facts.upgrade_status.completed
    assert facts.upgrade_progress is not None and facts.upgrade_progress.replica_set_check_timeout_seconds == 600
    assert [d.name for d in facts.upgrade_progress.domains] == ["ud0", "ud1", "ud2"]
    # The old cluster certificate has 12 days left: every node warns, and certmon reads each node's events.
    assert facts.cluster_health == "Warning"
    assert {e.node for e in facts.certificate_events} == {n.name for n in facts.config.nodes}
    assert {(e.certificate, e.thumbprint, e.health_state) for e in facts.certificate_events} == {
        ("cluster", old_sf, "Warning"),
        ("server", old_sf, "Warning"),
    }
    # Three applications, one per page: continuation tokens followed.
    assert facts.application_names == ("fabric:/AXSF", "fabric:/FinancialReporting", "fabric:/LocalAgent")
    assert {(a.role, a.thumbprint) for a in facts.applications or ()} == {
        (role, lab.cert(role, "old").thumbprint)
        for role in ("DataEncryption", "DataSigning", "SessionAuthentication", "Orchestrator")
    } | {("ServiceFabricClient", old_client), ("ServiceFabric", old_sf)}
    assert facts.server_certificate is not None and facts.server_certificate.thumbprint == old_sf
    assert facts.client_thumbprint == lab.service_certs["SFMonitorClient"].thumbprint
    references = {(r.role, r.thumbprint, r.reference) for r in observation.references}  # type: ignore[attr-defined]
    assert ("ServiceFabric", old_sf, "gateway D365FOCluster:ClusterCertificate.Thumbprint") in references
    assert (
        "DataEncryption",
        lab.cert("DataEncryption", "old").thumbprint,
        "fabric:/AXSF parameter DataAccess_DataEncryptionCertificateThumbprint",
    ) in references
    assert all(r.generation is Generation.NEW for r in observation.references)  # type: ignore[attr-defined]
    presented = [(o.store, o.thumbprint) for o in observation.certificates]  # type: ignore[attr-defined]
    assert presented == [("gateway", old_sf), ("gateway", lab.ca.thumbprint)]
    assert observation.problems == ()  # type: ignore[attr-defined]


def test_node_health_modes(sf: SfLab, now: datetime) -> None:
    none, _ = _collect(sf, now, node_health="none")
    assert none.certificate_events == ()
    sf.lab.now = now.replace(year=now.year - 2)  # two years earlier the old certificate was far from expiry
    healthy, _ = _collect(sf, now)
    assert healthy.cluster_health == "Ok" and healthy.certificate_events == ()
    every, _ = _collect(sf, now, node_health="all")
    assert len(every.certificate_events) == 2 * len(every.config.nodes)
    assert {e.health_state for e in every.certificate_events} == {"Ok"}


def test_a_failing_optional_call_is_a_problem_not_a_failure(lab_copy: Lab, now: datetime) -> None:
    with sf_lab(lab_copy, fail_status=500, fail_paths=("/Applications", "/$/GetClusterVersion")) as sf:
        facts, observation = _collect(sf, now)
    assert facts.applications is None and facts.config.version == "2.0.0"
    # The code version still comes from the upgrade progress.
    assert facts.code_version == "7.2.457.9590"
    problems = [(p.reason, p.message.split(":")[0]) for p in observation.problems]  # type: ignore[attr-defined]
    assert problems == [(Reason.HTTP_ERROR, "cluster version"), (Reason.HTTP_ERROR, "applications")]


def test_without_the_configuration_the_collection_fails(lab_copy: Lab, now: datetime) -> None:
    failing = sf_lab(lab_copy, fail_status=503, fail_paths=("/$/GetClusterConfiguration",))
    with failing as sf, pytest.raises(CollectorError) as caught:
        _collect(sf, now)
    assert caught.value.reason is Reason.HTTP_ERROR
    assert "HTTP 503 FABRIC_E_SERVICE_OFFLINE" in caught.value.message


def _samples(text: str) -> dict[str, list[dict[str, str]]]:
    out: dict[str, list[dict[str, str]]] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            out.setdefault(sample.name, []).append(dict(sample.labels))
    return out


def test_file_and_gateway_metrics_never_collide(sf: SfLab, now: datetime) -> None:
    daemon = sf.daemon(sf.settings(), now)
    try:
        text = generate_latest(daemon.registry).decode()
    finally:
        daemon.stop()
    samples = _samples(text)
    versions = {(s["source"], s["config_version"]) for s in samples["certmon_sf_config_version_info"]}
    assert versions == {("clusterconfig", "2.0.1"), ("servicefabric", "2.0.0")}
    thumbprints = samples["certmon_sf_cert_thumbprint_info"]
    keys = [tuple(sorted(s.items())) for s in thumbprints]
    assert len(keys) == len(set(keys))
    old_sf = sf.lab.cert("ServiceFabric", "old").thumbprint
    cluster_primary = {
        (s["source"], s["thumbprint"]) for s in thumbprints if s["certificate"] == "cluster" and s["slot"] == "primary"
    }
    assert cluster_primary == {
        ("clusterconfig", sf.lab.cert("ServiceFabric", "new").thumbprint),
        ("servicefabric", old_sf),
    }
    assert samples["certmon_sf_code_version_info"] == [{"environment": "demo", "version": "7.2.457.9590"}]
    assert samples["certmon_sf_rotation_supported"] == [{"environment": "demo"}]
    assert samples["certmon_sf_upgrade_state_info"] == [
        {
            "environment": "demo",
            "state": "RollingForwardCompleted",
            "running_config_version": "2.0.0",
            "manifest_version": "1",
        }
    ]
    apps = {(s["application"], s["role"]) for s in samples["certmon_sf_app_cert_info"]}
    assert ("fabric:/AXSF", "DataEncryption") in apps and ("fabric:/LocalAgent", "Orchestrator") in apps
    events = samples["certmon_sf_node_cert_expiry_timestamp_seconds"]
    assert {
        (e["node"], e["certificate"], e["thumbprint"], e["health_state"]) for e in events if e["node"] == "BI1"
    } == {
        ("BI1", "cluster", old_sf, "Warning"),
        ("BI1", "server", old_sf, "Warning"),
    }
    up = [s for s in samples["certmon_source_up"] if s["source"] == "servicefabric"]
    assert up == [{"environment": "demo", "source": "servicefabric", "target": "D365FOCluster"}]
