"""sf-cleanup-old-certs and the localagent upgrade precondition, against the simulated gateway."""

from __future__ import annotations

import dataclasses
import json
from datetime import datetime

from collectors.clusterconfig import load_cluster_config
from remediations.localagent import LocalAgentConfigUpdate
from remediations.outcome import Outcome
from remediations.servicefabric import CleanupOldCerts, StageRotation
from remediations.sfgates import OVERRIDE_OPTION
from tests.sfkit import SfLab, remediating

CLEANUP = CleanupOldCerts()


def _stage_and_finish(sf: SfLab, now: datetime) -> None:
    run = remediating(sf, now)
    try:
        assert run.engine.apply(StageRotation(), run.ctx).outcome is Outcome.APPLIED
    finally:
        run.close()
    sf.finish_upgrade()
    sf.finish_reencryption()


def test_cleanup_is_refused_until_the_staged_configuration_runs(sf: SfLab, now: datetime) -> None:
    old = sf.lab.cert("ServiceFabric", "old").thumbprint
    new = sf.lab.cert("ServiceFabric", "new").thumbprint
    run = remediating(sf, now)
    try:
        result = run.engine.apply(CLEANUP, run.ctx)
    finally:
        run.close()
    assert result.outcome is Outcome.REFUSED
    failed = {c.name: c.detail for c in result.checks if not c.ok}
    assert failed == {
        "staged configuration upgrade completed": "the cluster runs configuration 2.0.0, not 2.0.1: the upgrade "
        "to configuration 2.0.1 has not been started, has not finished, or was rolled back",
        "new certificates in use": f"the running configuration 2.0.0 does not use {new} yet: cluster primary is {old}; "
        f"server primary is {old}; reverse_proxy primary is {old}; client "
        f"{sf.lab.cert('ServiceFabricClient', 'new').thumbprint} is not admin; the gateway presents {old}",
        # The runbook's order: the old thumbprints go after the encrypted data is re-encrypted.
        "re-encryption finished (the runbook cleans up last)": "still encrypted with the old certificate: "
        "lab-encrypted-fields 1200; clean up after the re-encryption job finishes (reencryption-complete)",
    }


def test_cleanup_while_the_staged_upgrade_runs_is_refused(sf: SfLab, now: datetime) -> None:
    run = remediating(sf, now)
    try:
        run.engine.apply(StageRotation(), run.ctx)
    finally:
        run.close()
    sf.clock.advance(15)
    later = remediating(sf, now)
    try:
        result = later.engine.apply(CLEANUP, later.ctx)
    finally:
        later.close()
    assert result.outcome is Outcome.REFUSED
    assert (
        "precondition failed: staged configuration upgrade completed: the configuration upgrade is "
        "RollingForwardInProgress; the cluster runs configuration 2.0.0" in (result.message)
    )
    assert "is RollingForwardInProgress" in result.message


def test_cleanup_after_the_upgrade_uses_the_new_admin_client(sf: SfLab, now: datetime) -> None:
    _stage_and_finish(sf, now)
    lab = sf.lab
    new, new_client = lab.cert("ServiceFabric", "new").thumbprint, lab.cert("ServiceFabricClient", "new").thumbprint
    run = remediating(sf, now, follow=100)
    try:
        checks = CLEANUP.preconditions(run.ctx)
        assert all(c.ok for c in checks), checks
        assert {c.name: c.detail for c in checks}["new certificates in use"] == (
            f"the running configuration 2.0.1 uses {new}; the gateway presents it"
        )
        result = run.engine.apply(CLEANUP, run.ctx)
    finally:
        run.close()
    assert result.outcome is Outcome.APPLIED, result.message
    cleaned = load_cluster_config(lab.cluster_config)
    assert cleaned.version == "2.0.2" and cleaned.secondaries() == []
    assert [(c.thumbprint, c.is_admin) for c in cleaned.clients] == [(new_client, True)]
    posts = [who for method, _path, who in sf.gateway.requests if method == "POST"]
    assert posts[-1] == new_client
    running = json.loads(sf.cluster.running_text())
    assert running["ClusterConfigurationVersion"] == "2.0.2"
    assert "ThumbprintSecondary" not in json.dumps(running)
    again = remediating(sf, now)
    try:
        result = again.engine.apply(CLEANUP, again.ctx)
    finally:
        again.close()
    assert result.outcome is Outcome.NOTHING_TO_DO
    assert result.message == "nothing to change: ClusterConfig.json is rotated (version 2.0.2) and the cluster runs it"


def test_localagent_update_waits_for_the_configuration_upgrade(sf: SfLab, now: datetime) -> None:
    update = LocalAgentConfigUpdate()
    run = remediating(sf, now)
    try:
        refused = run.engine.apply(update, run.ctx)
    finally:
        run.close()
    assert refused.outcome is Outcome.REFUSED
    assert refused.message == (
        "precondition failed: cluster configuration upgrade completed: the cluster runs configuration 2.0.0, not "
        "2.0.1: the upgrade to configuration 2.0.1 has not been started, has not finished, or was rolled back; the "
        "LocalAgent would lose the cluster if pointed at certificates the cluster does not use yet"
    )
    _stage_and_finish(sf, now)
    later = remediating(sf, now)
    try:
        applied = later.engine.apply(update, later.ctx)
    finally:
        later.close()
    assert applied.outcome is Outcome.APPLIED, applied.message
    checks = {c.name: c.detail for c in applied.checks}
    assert checks["cluster configuration upgrade completed"] == (
        "the configuration upgrade to configuration 2.0.1 completed (RollingForwardCompleted)"
    )


def test_localagent_update_without_a_gateway_is_refused_unless_overridden(sf: SfLab, now: datetime) -> None:
    """Missing evidence is never healthy: no gateway, no update from the staged file alone."""
    settings = sf.settings()
    settings.sources.servicefabric.enabled = False
    run = remediating(sf, now, settings=settings)
    try:
        checks = {c.name: c for c in LocalAgentConfigUpdate().preconditions(run.ctx)}
        overridden = dataclasses.replace(run.ctx, options={**run.ctx.options, OVERRIDE_OPTION: True})
        allowed = {c.name: c for c in LocalAgentConfigUpdate().preconditions(overridden)}
    finally:
        run.close()
    gate = checks["cluster configuration upgrade completed"]
    assert not gate.ok
    assert "no Service Fabric gateway source (sources.servicefabric) is configured" in gate.detail
    assert allowed["cluster configuration upgrade completed"].ok
    assert allowed["cluster configuration upgrade completed"].detail.startswith("OVERRIDDEN by the operator")


def test_cleanup_waits_for_the_reencryption_then_applies(sf: SfLab, now: datetime) -> None:
    """Regression: the clean-up passed every pre-flight check while AXDB still held data under the old certificate."""
    run = remediating(sf, now)
    try:
        assert run.engine.apply(StageRotation(), run.ctx).outcome is Outcome.APPLIED
    finally:
        run.close()
    sf.finish_upgrade()
    waiting = remediating(sf, now)
    try:
        refused = waiting.engine.apply(CLEANUP, waiting.ctx)
    finally:
        waiting.close()
    assert refused.outcome is Outcome.REFUSED
    assert [c.name for c in refused.checks if not c.ok] == ["re-encryption finished (the runbook cleans up last)"]
    sf.finish_reencryption()
    done = remediating(sf, now, follow=100)
    try:
        assert done.engine.apply(CLEANUP, done.ctx).outcome is Outcome.APPLIED
    finally:
        done.close()
