"""The shared Service Fabric decisions: versions, rotation thumbprints and stages, upgrade answers."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest

from collectors.clusterconfig import ClusterConfig, parse_cluster_config
from collectors.errors import Reason
from collectors.model import Health, Observation, Snapshot, SourceResult
from collectors.servicefabric.evidence import (
    SfRotation,
    leftover_secondaries,
    rotation_stage,
    rotation_supported,
    sf_rotation,
    stuck_reason,
    upgrade_completed_evidence,
    upgrade_idle_evidence,
    version_evidence,
)
from collectors.servicefabric.model import GatewayFacts, UpgradeProgress, UpgradeStatus

NOW = datetime(2026, 11, 27, tzinfo=UTC)
A, B, C, D, E = ("A" * 40, "B" * 40, "C" * 40, "D" * 40, "E" * 40)


def _config(primary: str, secondary: str = "", clients: tuple[tuple[str, bool], ...] = ((C, True),)) -> ClusterConfig:
    pair = {"Thumbprint": primary, **({"ThumbprintSecondary": secondary} if secondary else {})}
    info = {
        "ClusterCertificate": pair,
        "ServerCertificate": pair,
        "ClientCertificateThumbprints": [{"CertificateThumbprint": t, "IsAdmin": a} for t, a in clients],
    }
    document = {
        "name": "c",
        "clusterConfigurationVersion": "1.0.1",
        "properties": {"security": {"CertificateInformation": info}},
    }
    return parse_cluster_config(document, "test")


def _snapshot(facts: Any = None, ok: bool = True) -> Snapshot:
    health = Health(ok, None if ok else Reason.TIMEOUT, "" if ok else "no answer", 0.1, NOW, NOW)
    result = SourceResult("servicefabric", "cluster", health, Observation(facts=facts) if facts is not None else None)
    return Snapshot("env", NOW, {("servicefabric", "cluster"): result})


def _facts(status: UpgradeStatus | None = None, progress: UpgradeProgress | None = None, **kw: Any) -> GatewayFacts:
    return GatewayFacts("https://gw", _config(A), "{}", upgrade_status=status, upgrade_progress=progress, **kw)


@pytest.mark.parametrize(
    ("version", "supported"),
    [
        ("7.2.457.9590", True),
        ("8.0.514.9590", True),
        ("7.1.510.9590", False),
        ("7.0.470", False),
        ("6.5", False),
        ("", None),
    ],
)
def test_rotation_supported(version: str, supported: bool | None) -> None:
    assert rotation_supported(version) is supported


def test_unknown_is_never_fine() -> None:
    empty = Snapshot("env", NOW, {})
    for evidence in (version_evidence(empty), upgrade_idle_evidence(empty), upgrade_completed_evidence(empty, "1")):
        assert evidence.value is None and not evidence.true
        assert "(sources.servicefabric) is not configured" in evidence.detail
    failing = upgrade_idle_evidence(_snapshot(_facts(), ok=False))
    assert failing.value is None
    assert failing.detail == "the upgrade state is unknown: the gateway cluster is failing (timeout): no answer"


def test_upgrade_answers() -> None:
    done = _snapshot(_facts(UpgradeStatus("RollingForwardCompleted", "1.0.1")))
    assert upgrade_idle_evidence(done).true
    assert upgrade_completed_evidence(done, "1.0.1").true
    other = upgrade_completed_evidence(done, "1.0.2")
    assert other.value is False and "the cluster runs configuration 1.0.1, not 1.0.2" in other.detail
    # While an upgrade to 1.0.2 runs, ConfigVersion is still the running 1.0.1 (never the target).
    running = _snapshot(_facts(UpgradeStatus("RollingForwardInProgress", "1.0.1", 7)))
    assert upgrade_idle_evidence(running).value is False
    assert upgrade_completed_evidence(running, "1.0.2").detail == (
        "the configuration upgrade is RollingForwardInProgress; the cluster runs configuration 1.0.1"
    )


def test_completed_needs_the_running_version_not_a_status_that_names_the_target() -> None:
    """Regression: a status whose ConfigVersion equals the target is no proof while the cluster runs another."""
    misleading = _snapshot(_facts(UpgradeStatus("RollingForwardCompleted", "1.0.2")))
    evidence = upgrade_completed_evidence(misleading, "1.0.2")
    assert evidence.value is False and "not 1.0.2" in evidence.detail


def test_stuck_reasons() -> None:
    progress = UpgradeProgress(
        "RollingForwardInProgress", "7.2", "1.0.2", domain_duration_seconds=600.0, current_domain="ud1"
    )
    status = UpgradeStatus("RollingForwardInProgress", "1.0.1")
    assert stuck_reason(_facts(status, progress), 601) == ""
    assert stuck_reason(_facts(status, progress), 600).startswith(
        "the upgrade from configuration 1.0.1 has spent 10 min"
    )
    failed = UpgradeProgress("Failed", "7.2", "1.0.2", failure_reason="HealthCheck")
    assert stuck_reason(_facts(UpgradeStatus("Failed", "1.0.1"), failed), 600) == (
        "the configuration upgrade (from configuration 1.0.1) is Failed (HealthCheck)"
    )
    completed = UpgradeProgress("RollingForwardCompleted", "7.2", "1.0.2", domain_duration_seconds=600.0)
    assert stuck_reason(_facts(UpgradeStatus("RollingForwardCompleted", "1.0.2"), completed), 1) == ""


def test_rotation_stages() -> None:
    rotation = SfRotation(new_server=B, old_server=A, new_client=D, old_client=C)
    assert rotation_stage(_config(A), rotation) == "before"
    assert rotation_stage(_config(B, A, ((C, False), (D, True))), rotation) == "staged"
    assert rotation_stage(_config(B, "", ((D, True),)), rotation) == "rotated"
    assert rotation_stage(_config(B, A, ((C, True),)), rotation) == "mixed"
    assert leftover_secondaries(_config(B, A), rotation) == []
    assert leftover_secondaries(_config(A, E), rotation) == [
        f"cluster ThumbprintSecondary {E} (primary {A})",
        f"server ThumbprintSecondary {E} (primary {A})",
    ]


def test_rotation_without_the_old_template_uses_the_client_list() -> None:
    from collectors.configtemplate import ConfigTemplate, TemplateCertificate
    from collectors.model import Generation

    def cert(role: str, thumbprint: str) -> TemplateCertificate:
        return TemplateCertificate(
            role, role, role, thumbprint, (), "", "", "", "", "", "", True, False, False, False, False
        )

    template = ConfigTemplate(
        "t", Generation.NEW, "2.17", (cert("ServiceFabric", B), cert("ServiceFabricClient", D)), (), "", (), ()
    )
    health = Health(True, None, "", 0.1, NOW, NOW)
    snapshot = Snapshot(
        "env",
        NOW,
        {("configtemplate", "new"): SourceResult("configtemplate", "new", health, Observation(facts=template))},
    )
    found = sf_rotation(snapshot, _config(A))
    assert (found.new_server, found.old_server, found.new_client, found.old_client) == (B, A, D, C)
    assert found.basis == "ConfigTemplate.xml (Infrastructure) and the cluster configuration's client list"
    ambiguous = sf_rotation(snapshot, _config(A, clients=((C, True), (E, True))))
    assert not ambiguous.known and "the old admin client certificate cannot be told apart" in ambiguous.problem
    assert sf_rotation(Snapshot("env", NOW, {}), None).problem == (
        "the new ConfigTemplate.xml (sources.configtemplate.infrastructure) is not read"
    )
