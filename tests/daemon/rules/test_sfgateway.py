"""The Service Fabric findings, each next to a neighbouring healthy state, from the simulated gateway."""

from __future__ import annotations

from datetime import datetime

from collectors.model import Finding, Severity
from daemon.settings import Settings
from simulator.lab import Lab
from tests.sfkit import SfLab, sf_lab

SF_RULES = {
    "sf-version-unsupported-for-rotation",
    "sf-upgrade-stuck",
    "sf-replica-check-timeout-reset",
    "old-cert-removed-early",
}


def _findings(sf: SfLab, now: datetime, settings: Settings | None = None) -> list[Finding]:
    daemon = sf.daemon(settings or sf.settings(), now)
    try:
        return [f for f in daemon.view.evaluation.findings if f.rule in SF_RULES]
    finally:
        daemon.stop()


def _start(sf: SfLab) -> None:
    sf.cluster.start_upgrade({"ClusterConfig": sf.lab.cluster_config.read_text(encoding="utf-8")})


def test_a_healthy_cluster_raises_none(sf: SfLab, now: datetime) -> None:
    assert _findings(sf, now) == []
    _start(sf)
    sf.clock.advance(15)
    assert _findings(sf, now) == []


def test_version_unsupported_is_critical_while_a_rotation_waits(lab_copy: Lab, now: datetime) -> None:
    with sf_lab(lab_copy, code_version="7.1.510.9590") as sf:
        (critical,) = _findings(sf, now)
        settings = sf.settings()
        settings.sources.configtemplate.enabled = False
        (warning,) = _findings(sf, now, settings)
    new = lab_copy.cert("ServiceFabric", "new").thumbprint
    assert (critical.rule, critical.severity, critical.step) == (
        "sf-version-unsupported-for-rotation",
        Severity.CRITICAL,
        "sf-staged",
    )
    assert critical.message == (
        "D365FOCluster runs Service Fabric 7.1.510.9590: certificate rotation is not supported on 7.0.x and 7.1.x; "
        f"upgrade the cluster to 7.2 or later before staging new certificates (the new {new} is waiting to be staged)"
    )
    assert warning.severity is Severity.WARNING


def test_an_upgrade_stuck_on_a_domain(lab_copy: Lab, now: datetime) -> None:
    with sf_lab(lab_copy, stuck=True) as sf:
        _start(sf)
        sf.clock.advance(59 * 60)
        assert _findings(sf, now) == []
        sf.clock.advance(2 * 60)
        (stuck,) = _findings(sf, now)
    assert (stuck.rule, stuck.severity, stuck.remediation, stuck.step) == (
        "sf-upgrade-stuck",
        Severity.CRITICAL,
        "",
        "sf-upgraded",
    )
    assert stuck.message == (
        "D365FOCluster: the upgrade from configuration 2.0.0 has spent 61 min on upgrade domain ud0 (0 of 3 domains "
        "done); see Get-ServiceFabricClusterUpgrade and the cluster's health"
    )


def test_a_rolled_back_upgrade(sf: SfLab, now: datetime) -> None:
    _start(sf)
    assert sf.cluster.upgrade is not None
    sf.cluster.upgrade.state = "RollingBackCompleted"
    (finding,) = _findings(sf, now)
    assert finding.message.startswith(
        "D365FOCluster: the configuration upgrade (from configuration 2.0.0) is RollingBackCompleted"
    )


def test_a_reset_replica_timeout_only_matters_while_an_upgrade_runs(lab_copy: Lab, now: datetime) -> None:
    with sf_lab(lab_copy, reset_replica_timeout=True) as sf:
        sf.cluster.replica_timeout = 4294967295
        assert _findings(sf, now) == []
        _start(sf)
        (reset,) = _findings(sf, now)
    assert (reset.rule, reset.severity, reset.remediation) == (
        "sf-replica-check-timeout-reset",
        Severity.WARNING,
        "sf-replica-check-timeout",
    )
    assert reset.message == (
        "D365FOCluster: the running upgrade's replica-set check timeout is back at 49710.06:28:15; node types with a "
        "single node (MRType, ReportServerType) hold the upgrade on it; set it to 30 s"
    )


def test_a_certificate_the_applications_use_removed_from_a_node(sf: SfLab, now: datetime) -> None:
    settings = sf.settings()
    settings.sources.certfolder.nodes = ["AOS1"]
    assert _findings(sf, now, settings) == []
    folder = sf.lab.certs_dir / "AOS1"
    # RSAT is no application parameter: its removal is not this rule's business.
    (folder / "RSAT-old.pfx").unlink()
    assert _findings(sf, now, settings) == []
    (folder / "DataEncryption-old.pfx").unlink()
    (removed,) = _findings(sf, now, settings)
    old = sf.lab.cert("DataEncryption", "old").thumbprint
    assert (removed.rule, removed.severity, removed.role, removed.thumbprint, removed.node, removed.target) == (
        "old-cert-removed-early",
        Severity.CRITICAL,
        "DataEncryption",
        old,
        "AOS1",
        "fabric:/AXSF",
    )
    assert removed.message.startswith(
        f"fabric:/AXSF still uses the previous DataEncryption certificate {old} "
        "(parameter DataAccess_DataEncryptionCertificateThumbprint) but it was removed from AOS1 (seen there until "
    )
    # A restarted daemon still knows: the history is in the state store.
    assert [f.rule for f in _findings(sf, now, settings)] == ["old-cert-removed-early"]
