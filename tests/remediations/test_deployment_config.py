"""deployment-config-update on the lab: config.json located through OrchestratorData, kept inside the share."""

from __future__ import annotations

import os
import shutil
from datetime import datetime
from pathlib import Path

from collectors.agentconfig import CLIENT_SETTING, SERVER_SETTING, load_agent_config
from daemon.app import Daemon
from daemon.remediation import remediation_engine
from remediations.base import RemediationContext
from remediations.deploymentconfig import DeploymentConfigUpdate
from remediations.engine import Engine
from remediations.outcome import Outcome
from simulator.agentshare import DEPLOYMENT_FOLDER
from simulator.lab import Lab
from tests.remediations.conftest import lab_context, lab_settings_for

REMEDIATION = DeploymentConfigUpdate()


def share_file(lab: Lab) -> Path:
    return lab.agent_share.joinpath(*DEPLOYMENT_FOLDER, "config.json")


def test_plan_edits_only_the_two_thumbprints(lab_copy: Lab, ctx: RemediationContext) -> None:
    checks = REMEDIATION.preconditions(ctx)
    assert [(c.name, c.ok) for c in checks] == [
        ("agent share configured", True),
        ("config.json located and read", True),
        ("cluster thumbprints known", True),
        ("new certificates in the inventory", True),
        ("cluster configuration upgrade completed", True),  # overridden: the lab has no gateway (lab_context)
    ], checks
    plan = REMEDIATION.plan(ctx)
    (change,) = plan.files()
    assert change.path == share_file(lab_copy).resolve()
    old = (lab_copy.cert("ServiceFabric", "old").thumbprint, lab_copy.cert("ServiceFabricClient", "old").thumbprint)
    new = (lab_copy.cert("ServiceFabric", "new").thumbprint, lab_copy.cert("ServiceFabricClient", "new").thumbprint)
    assert [(v.setting, v.before, v.after) for v in change.values] == [
        (SERVER_SETTING, old[0], new[0]),
        (CLIENT_SETTING, old[1], new[1]),
    ]
    assert change.after == change.before.replace(old[0].encode(), new[0].encode()).replace(
        old[1].encode(), new[1].encode()
    )
    assert "CRLF line endings kept" in plan.render()
    assert "clean-up job" in plan.follow_up[0]


def test_apply_backs_up_writes_and_clears_then_nothing_to_do(
    lab_copy: Lab, ctx: RemediationContext, engine: Engine, daemon: Daemon
) -> None:
    before = share_file(lab_copy).read_bytes()
    assert len(ctx.findings_for(REMEDIATION.name)) == 2
    result = engine.apply(REMEDIATION, ctx)
    assert result.outcome is Outcome.APPLIED and result.cleared is True, result.message
    config = load_agent_config(share_file(lab_copy))
    assert config.server_thumbprint == lab_copy.cert("ServiceFabric", "new").thumbprint
    (backup,) = result.backups
    assert Path(backup).read_bytes() == before
    again = engine.apply(REMEDIATION, lab_context(daemon))
    assert again.outcome is Outcome.NOTHING_TO_DO
    assert again.message.startswith("nothing to change: config.json already carries the cluster's thumbprints")


def test_a_location_outside_the_share_is_refused(lab_copy: Lab, now: datetime) -> None:
    import sqlite3

    connection = sqlite3.connect(lab_copy.orchestrator_file)
    connection.execute("UPDATE DeploymentInstanceArtifact SET Location = ?", ("\\\\ATTACKER\\share\\config.json",))
    connection.commit()
    connection.close()
    daemon = Daemon(lab_settings_for(lab_copy), clock=lambda: now)
    try:
        daemon.collect_once()
        result = remediation_engine(daemon, 0.2).apply(REMEDIATION, lab_context(daemon))
    finally:
        daemon.stop()
    assert result.outcome is Outcome.REFUSED
    assert "config.json located and read" in result.message and "refused: not inside the agent share" in result.message


def test_a_link_planted_after_collection_is_refused_at_planning(
    lab_copy: Lab, ctx: RemediationContext, engine: Engine, tmp_path: Path
) -> None:
    folder = share_file(lab_copy).parent
    outside = tmp_path / "outside"
    shutil.copytree(folder, outside)
    planted = (outside / "config.json").read_bytes()
    shutil.rmtree(folder)
    os.symlink(outside, folder)
    result = engine.apply(REMEDIATION, ctx)
    assert result.outcome is Outcome.FAILED
    assert "cannot plan" in result.message and "resolves outside the agent share" in result.message
    assert (outside / "config.json").read_bytes() == planted


def test_before_the_rotation_there_is_nothing_to_do(lab_before: Lab, now: datetime) -> None:
    lab = lab_before
    daemon = Daemon(lab_settings_for(lab), clock=lambda: now)
    try:
        daemon.collect_once()
        result = remediation_engine(daemon, 0.2).dry_run(REMEDIATION, lab_context(daemon))
    finally:
        daemon.stop()
    assert result.outcome is Outcome.NOTHING_TO_DO, result.message
