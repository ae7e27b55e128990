"""sf-replica-check-timeout: an upgrade held by a single-node node type, unblocked through UpdateUpgrade."""

from __future__ import annotations

from datetime import datetime

from remediations.outcome import Outcome
from remediations.servicefabric import ReplicaCheckTimeout, StageRotation
from simulator.lab import Lab
from tests.sfkit import SfLab, remediating, sf_lab

REPLICA = ReplicaCheckTimeout()


def _start_upgrade(sf: SfLab, now: datetime) -> None:
    run = remediating(sf, now)
    try:
        assert run.engine.apply(StageRotation(), run.ctx).outcome is Outcome.APPLIED
    finally:
        run.close()


def test_a_held_upgrade_is_unblocked_and_the_finding_clears(lab_copy: Lab, now: datetime) -> None:
    with sf_lab(lab_copy, reset_replica_timeout=True) as sf:
        _start_upgrade(sf, now)
        sf.clock.advance(2 * 3600)
        run = remediating(sf, now, settings=sf.settings(upgrade_stuck_after_minutes=30))
        try:
            findings = {f.rule: f for f in run.ctx.findings if f.source == "servicefabric"}
            assert findings["sf-replica-check-timeout-reset"].remediation == "sf-replica-check-timeout"
            assert findings["sf-upgrade-stuck"].message.startswith(
                "D365FOCluster: the upgrade from configuration 2.0.0 has spent 120 min on upgrade domain ud0 "
                "(0 of 3 domains done); the replica-set check timeout is at 49710.06:28:15"
            )
            plan = REPLICA.plan(run.ctx)
            fields = dict(plan.changes[0].to_dict()["fields"])
            assert fields["UpdateDescription.ReplicaSetCheckTimeoutInMilliseconds"] == "30000 (now 49710.06:28:15)"
            assert fields["single-node node types"] == "MRType, ReportServerType"
            result = run.engine.apply(REPLICA, run.ctx)
        finally:
            run.close()
        assert result.outcome is Outcome.APPLIED, result.message
        assert result.cleared is True
        assert sorted(f.rule for f in result.findings_before) == ["sf-replica-check-timeout-reset", "sf-upgrade-stuck"]
        posts = [path for method, path, _who in sf.gateway.requests if method == "POST"]
        assert posts == ["/$/StartClusterConfigurationUpgrade", "/$/UpdateUpgrade"]
        assert run.progress[-1] == (
            "sf-replica-check-timeout: RollingForwardInProgress, running configuration 2.0.0, upgrade domain ud0 "
            "(0 of 3 domains done), replica-set check timeout 30 s"
        )
        # Unblocked: the walk moves on and completes.
        sf.finish_upgrade()
        assert sf.cluster.status()["UpgradeState"] == "RollingForwardCompleted"
        again = remediating(sf, now)
        try:
            refused = again.engine.apply(REPLICA, again.ctx)
        finally:
            again.close()
    assert refused.outcome is Outcome.REFUSED
    assert refused.message == (
        "precondition failed: an upgrade is in progress: no upgrade is running (RollingForwardCompleted, "
        "running configuration 2.0.1): nothing to unblock"
    )


def test_nothing_to_do_when_already_30_seconds(sf: SfLab, now: datetime) -> None:
    sf.cluster.replica_timeout = 30
    _start_upgrade(sf, now)
    run = remediating(sf, now)
    try:
        result = run.engine.apply(REPLICA, run.ctx)
    finally:
        run.close()
    assert result.outcome is Outcome.NOTHING_TO_DO
    assert result.message == "nothing to change: the replica-set check timeout is already 30 s"


def test_refused_without_an_admin_certificate(lab_copy: Lab, now: datetime) -> None:
    with sf_lab(lab_copy, reset_replica_timeout=True) as sf:
        _start_upgrade(sf, now)
        run = remediating(sf, now, settings=sf.settings(admin_certificates=[]))
        try:
            result = run.engine.apply(REPLICA, run.ctx)
        finally:
            run.close()
    assert result.outcome is Outcome.REFUSED
    assert result.message == "precondition failed: admin client certificate: no admin client certificate is configured"


def test_refused_when_the_gateway_cannot_be_read(lab_copy: Lab, now: datetime) -> None:
    with sf_lab(lab_copy, fail_status=503, fail_paths=("/$/GetClusterConfiguration",)) as sf:
        run = remediating(sf, now)
        try:
            result = run.engine.apply(REPLICA, run.ctx)
        finally:
            run.close()
    assert result.outcome is Outcome.REFUSED
    failed = {c.name: c.detail for c in result.checks if not c.ok}
    assert failed["gateway read"].startswith(
        "the upgrade state is unknown: the gateway D365FOCluster is failing (http_error)"
    )
    assert failed["admin client certificate"] == (
        "the gateway was not read successfully; its running configuration is unknown"
    )
