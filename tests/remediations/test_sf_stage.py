"""sf-stage-rotation against the simulated gateway over mutual TLS: apply, file-only, refusals."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from datetime import datetime

import pytest

from collectors.clusterconfig import load_cluster_config
from remediations.outcome import Outcome
from remediations.plan import FileChange, HttpRequest
from remediations.servicefabric import StageRotation
from simulator.lab import Lab
from simulator.servicefabric import running_config_text
from tests.sfkit import STEP, SfLab, remediating, sf_lab

STAGE = StageRotation()


def _sha(sf: SfLab) -> str:
    return hashlib.sha256(sf.lab.cluster_config.read_bytes()).hexdigest()


def test_stage_writes_the_file_starts_the_upgrade_and_follows_it(sf: SfLab, now: datetime) -> None:
    sf.unstage_file()
    lab = sf.lab
    old, new = lab.cert("ServiceFabric", "old").thumbprint, lab.cert("ServiceFabric", "new").thumbprint
    run = remediating(sf, now, follow=5 * STEP)
    try:
        assert all(c.ok for c in STAGE.preconditions(run.ctx)), STAGE.preconditions(run.ctx)
        plan = STAGE.plan(run.ctx)
        assert [type(c) for c in plan.changes] == [FileChange, HttpRequest]
        request = plan.changes[1]
        assert isinstance(request, HttpRequest)
        assert request.url.endswith("/$/StartClusterConfigurationUpgrade?api-version=6.0")
        assert (
            dict(request.fields)["client certificate"] == f"{lab.cert('ServiceFabricClient', 'old').thumbprint} (admin)"
        )
        result = run.engine.apply(STAGE, run.ctx, expected_digest=plan.digest)
    finally:
        run.close()
    assert result.outcome is Outcome.APPLIED, result.message
    staged = load_cluster_config(lab.cluster_config)
    assert staged.version == "2.0.1"
    assert {(c.thumbprint, c.thumbprint_secondary) for c in staged.certificates} == {(new, old)}
    assert b"\r\n" in lab.cluster_config.read_bytes()
    # The admin call was made with the old admin client; the walk was followed to its end.
    posts = [(path, who) for method, path, who in sf.gateway.requests if method == "POST"]
    assert posts == [("/$/StartClusterConfigurationUpgrade", lab.cert("ServiceFabricClient", "old").thumbprint)]
    assert run.progress[0] == "sf-stage-rotation: the gateway accepted the configuration upgrade to 2.0.1"
    assert run.progress[1] == (
        "RollingForwardInProgress, running configuration 2.0.0, upgrade domain ud0 (0 of 3 domains done)"
    )
    assert run.progress[-1] == "RollingForwardCompleted, running configuration 2.0.1 (3 of 3 domains done)"
    assert json.loads(sf.cluster.running_text())["ClusterConfigurationVersion"] == "2.0.1"
    # Apply again: the file is staged and the cluster runs it.
    again = remediating(sf, now)
    try:
        second = again.engine.apply(STAGE, again.ctx)
    finally:
        again.close()
    assert second.outcome is Outcome.NOTHING_TO_DO
    assert second.message == "nothing to change: ClusterConfig.json is staged (version 2.0.1) and the cluster runs it"


def test_a_staged_file_only_needs_the_upgrade_started(sf: SfLab, now: datetime) -> None:
    before = _sha(sf)
    run = remediating(sf, now)
    try:
        plan = STAGE.plan(run.ctx)
        assert [c.kind for c in plan.changes] == ["http"]
        result = run.engine.apply(STAGE, run.ctx)
    finally:
        run.close()
    assert result.outcome is Outcome.APPLIED, result.message
    assert _sha(sf) == before
    assert sf.cluster.status() == {
        "UpgradeState": "RollingForwardInProgress",
        "ProgressStatus": 1,
        "ConfigVersion": "2.0.0",
        "Details": "",
    }
    assert run.progress[-1] == (
        "RollingForwardInProgress, running configuration 2.0.0, upgrade domain ud0 (0 of 3 domains done)"
    )


def test_without_an_admin_certificate_only_the_file_is_written(sf: SfLab, now: datetime) -> None:
    sf.unstage_file()
    run = remediating(sf, now, settings=sf.settings(admin_certificates=[]))
    try:
        plan = STAGE.plan(run.ctx)
        result = run.engine.apply(STAGE, run.ctx)
    finally:
        run.close()
    assert [c.kind for c in plan.changes] == ["file"]
    assert plan.follow_up[0].startswith(
        "certmon does not start the upgrade (no admin client certificate is configured): on a cluster node, run "
        "`Start-ServiceFabricClusterConfigurationUpgrade -ClusterConfigPath"
    )
    assert result.outcome is Outcome.APPLIED
    assert load_cluster_config(sf.lab.cluster_config).version == "2.0.1"
    assert [m for m, _p, _w in sf.gateway.requests if m == "POST"] == []


def test_a_refused_upgrade_rolls_the_file_back(lab_copy: Lab, now: datetime) -> None:
    with sf_lab(lab_copy, fail_status=400, fail_paths=("/$/StartClusterConfigurationUpgrade",)) as sf:
        sf.unstage_file()
        before = _sha(sf)
        run = remediating(sf, now)
        try:
            result = run.engine.apply(STAGE, run.ctx)
        finally:
            run.close()
    assert result.outcome is Outcome.FAILED
    assert "StartClusterConfigurationUpgrade: the gateway refused: HTTP 400 FABRIC_E_SERVICE_OFFLINE" in result.message
    assert result.message.endswith("every change was rolled back")
    assert _sha(sf) == before


def _refusal(sf: SfLab, now: datetime, **section: object) -> dict[str, str]:
    run = remediating(sf, now, settings=sf.settings(**section) if section else None)
    try:
        before = _sha(sf)
        result = run.engine.apply(STAGE, run.ctx)
    finally:
        run.close()
    assert result.outcome is Outcome.REFUSED, result.message
    assert _sha(sf) == before
    assert [m for m, _p, _w in sf.gateway.requests if m == "POST"] == []
    return {c.name: c.detail for c in result.checks if not c.ok}


def test_refused_on_service_fabric_71(lab_copy: Lab, now: datetime) -> None:
    with sf_lab(lab_copy, code_version="7.1.510.9590") as sf:
        failed = _refusal(sf, now)
    assert failed == {
        "Service Fabric 7.2 or later": "Service Fabric 7.1.510.9590 does not support certificate rotation (7.0.x and "
        "7.1.x): upgrade the cluster to 7.2 or later first"
    }


def test_refused_while_a_secondary_from_a_previous_rotation_remains(sf: SfLab, now: datetime) -> None:
    older = sf.lab.cert("SSRSHTTPS", "old").thumbprint
    document = json.loads(running_config_text(sf.lab))
    info = document["properties"]["security"]["CertificateInformation"]
    info["ClusterCertificate"]["ThumbprintSecondary"] = older
    text = json.dumps(document, indent=4)
    sf.cluster.config_text = text
    sf.lab.cluster_config.write_text(text, encoding="utf-8")
    failed = _refusal(sf, now)
    primary = sf.lab.cert("ServiceFabric", "old").thumbprint
    assert failed["no secondary left from a previous rotation"] == (
        f"ClusterConfig.json cluster ThumbprintSecondary {older} (primary {primary}); the running configuration "
        f"cluster ThumbprintSecondary {older} (primary {primary}): Service Fabric refuses to upgrade from two "
        "different certificates to two different certificates; remove it (sf-cleanup-old-certs) and let that "
        "upgrade finish first"
    )


def test_refused_while_an_upgrade_is_in_progress(sf: SfLab, now: datetime) -> None:
    sf.cluster.start_upgrade({"ClusterConfig": sf.lab.cluster_config.read_text(encoding="utf-8")})
    failed = _refusal(sf, now)
    assert failed == {
        "no upgrade in progress": "an upgrade is in progress (RollingForwardInProgress); the cluster still runs "
        "configuration 2.0.0"
    }


def test_refused_when_a_node_lacks_the_new_certificate(sf: SfLab, now: datetime) -> None:
    (sf.lab.certs_dir / "ORCH1" / "ServiceFabric-new.pfx").unlink()
    failed = _refusal(sf, now)
    assert failed == {
        "new certificates on every node": f"ORCH1 lacks {sf.lab.cert('ServiceFabric', 'new').thumbprint}; "
        "7 node(s) without inventory not checked"
    }


def test_refused_for_a_stale_file(sf: SfLab, now: datetime) -> None:
    document = json.loads(running_config_text(sf.lab))
    document["clusterConfigurationVersion"] = "1.9.0"
    sf.lab.cluster_config.write_text(json.dumps(document), encoding="utf-8")
    failed = _refusal(sf, now)
    assert failed["ClusterConfig.json matches the running configuration"].startswith(
        "ClusterConfig.json is version 1.9.0 but the cluster runs 2.0.0: export the running configuration"
    )


def test_refused_for_a_cluster_declared_by_common_name(sf: SfLab, now: datetime) -> None:
    document = json.loads(running_config_text(sf.lab))
    info = document["properties"]["security"]["CertificateInformation"]
    for key in ("ClusterCertificate", "ServerCertificate", "ReverseProxyCertificate"):
        info.pop(key)
    info["ClusterCertificateCommonNames"] = {
        "CommonNames": [
            {"CertificateCommonName": "*.contoso.lab", "CertificateIssuerThumbprint": sf.lab.ca.thumbprint}
        ],
        "X509StoreName": "My",
    }
    sf.lab.cluster_config.write_text(json.dumps(document), encoding="utf-8")
    failed = _refusal(sf, now)
    assert failed["certificates declared by thumbprint"] == (
        "the cluster certificate is declared by common name: thumbprint staging does not apply; install the new "
        "certificate (same common name, same issuer) on every node and Service Fabric uses the one that expires last"
    )


@pytest.mark.parametrize(
    ("change", "name", "detail"),
    [
        (
            lambda s: setattr(s.sources.clusterconfig, "path", None),
            "ClusterConfig.json configured",
            "sources.clusterconfig.path is not set (the file operators stage)",
        ),
        (
            lambda s: setattr(s.sources.configtemplate, "enabled", False),
            "rotation thumbprints known",
            "the new ConfigTemplate.xml (sources.configtemplate.infrastructure) is not read",
        ),
        (
            lambda s: setattr(s.sources.servicefabric, "enabled", False),
            "Service Fabric 7.2 or later",
            "the Service Fabric version is unknown: the gateway source (sources.servicefabric) is not configured",
        ),
    ],
)
def test_refused_without_the_evidence(
    sf: SfLab, now: datetime, change: Callable[[object], None], name: str, detail: str
) -> None:
    settings = sf.settings()
    change(settings)
    run = remediating(sf, now, settings=settings)
    try:
        result = run.engine.apply(STAGE, run.ctx)
    finally:
        run.close()
    assert result.outcome is Outcome.REFUSED
    failed = {c.name: c.detail for c in result.checks if not c.ok}
    assert failed[name] == detail
