"""certmon_cert_safe_to_remove: an old certificate is safe only when every step that needs it is done."""

from __future__ import annotations

import urllib.request
from datetime import timedelta

from prometheus_client.parser import text_string_to_metric_families

from collectors.certificate import certificate_from_der
from collectors.model import CertObservation, CertReference, Generation, Observation
from daemon.app import Daemon
from daemon.sources.registry import build_collectors
from simulator.pki import days, make_certificate
from tests.daemon.scenarios import Scenario, static_source


def _adfs(scenario: Scenario):  # type: ignore[no-untyped-def]
    """AD FS token-signing certificate as the AD FS source reports it (metadata and reference)."""
    issued = make_certificate(
        "ADFS Signing - adfs.contoso.lab", not_before=days(scenario.now, -10), not_after=days(scenario.now, 300)
    )
    cert = certificate_from_der(issued.der)
    observation = Observation(
        certificates=(CertObservation(cert, "adfs", "adfs.contoso.lab", store="FederationMetadata"),),
        references=(CertReference("ADFSTokenSigning", cert.thumbprint, Generation.NEW, "FederationMetadata", "adfs"),),
    )
    return static_source("adfs", {"adfs.contoso.lab": observation})


def test_nothing_is_safe_mid_rotation(scenario: Scenario) -> None:
    old = {(c.role, c.thumbprint): c for c in scenario.collect().checklist.old_certificates}
    lab = scenario.lab
    assert len(old) == 12 and not any(c.safe_to_remove for c in old.values())
    sf = old[("ServiceFabric", lab.cert("ServiceFabric", "old").thumbprint)]
    assert "sf-cleaned" in sf.blocking and "sf-upgraded" in sf.blocking
    assert any(b.startswith("still named by ClusterConfig.json") for b in sf.blocking)
    de = old[("DataEncryption", lab.cert("DataEncryption", "old").thumbprint)]
    assert "reencryption-complete" in de.blocking, "no SQL evidence: never safe"


def test_sql_certificate_safe_once_its_steps_are_done(scenario: Scenario) -> None:
    evaluation = scenario.collect(extra=[_adfs(scenario)])
    sql_adfs = evaluation.checklist.state("sql-adfs-checked")
    assert sql_adfs is not None and sql_adfs.status == "done", sql_adfs
    old_sql = scenario.lab.cert("SQLCluster", "old").thumbprint
    (sql,) = [c for c in evaluation.checklist.old_certificates if c.thumbprint == old_sql]
    assert sql.safe_to_remove and sql.blocking == ()


def test_sql_certificate_blocked_while_ad_fs_is_near_expiry(scenario: Scenario) -> None:
    # The token-signing certificate has 20 days left, inside the default 30-day warning window.
    evaluation = scenario.collect(extra=[_adfs(scenario)], at=scenario.now + timedelta(days=280))
    state = evaluation.checklist.state("sql-adfs-checked")
    assert state is not None and state.status == "pending" and "AD FS ADFSTokenSigning" in state.detail


def test_metrics_over_http(scenario: Scenario) -> None:
    settings = scenario.settings()
    extra = [_adfs(scenario)]
    daemon = Daemon(settings, collectors=[*build_collectors(settings), *extra], clock=lambda: scenario.now)
    try:
        daemon.collect_once()
        daemon.start(schedule=False)
        assert daemon.http is not None
        with urllib.request.urlopen(daemon.http.url + "/metrics", timeout=10) as response:
            body = response.read().decode()
    finally:
        daemon.stop()
    samples = [s for family in text_string_to_metric_families(body) for s in family.samples]
    done = {s.labels["step"]: s.value for s in samples if s.name == "certmon_rotation_step_done"}
    assert done["certs-generated"] == 1.0 and done["sf-upgraded"] == 0.0 and done["sql-adfs-checked"] == 1.0
    assert len(done) == 15
    status = {
        (s.labels["step"], s.labels["status"]): s.value for s in samples if s.name == "certmon_rotation_step_status"
    }
    assert status[("sf-upgraded", "unknown")] == 1.0 and status[("sf-upgraded", "done")] == 0.0
    assert sum(v for (step, _), v in status.items() if step == "localagent-updated") == 1.0
    safe = {
        (s.labels["role"], s.labels["thumbprint"]): s.value for s in samples if s.name == "certmon_cert_safe_to_remove"
    }
    lab = scenario.lab
    assert safe[("SQLCluster", lab.cert("SQLCluster", "old").thumbprint)] == 1.0
    assert safe[("DataEncryption", lab.cert("DataEncryption", "old").thumbprint)] == 0.0
    assert all(s.labels["environment"] == "demo" for s in samples if s.name.startswith("certmon_rotation"))
