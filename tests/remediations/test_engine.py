"""The engine: dry run, apply, no-op, refusals, rollback on error and signal, journal, audit."""

from __future__ import annotations

import dataclasses
import json
import os
import signal
from collections.abc import Sequence
from pathlib import Path

import pytest

from collectors.files import read_bytes
from collectors.secrets import MASK, register_secret
from daemon.app import Daemon
from remediations.audit import AUDIT_FILE, Auditor, JsonlAuditLog
from remediations.base import Recollection, RemediationContext, VerificationError
from remediations.checkpoint import Checkpoint
from remediations.engine import Engine
from remediations.files import sha256, stale_temp_files
from remediations.journal import Journal
from remediations.localagent import LocalAgentConfigUpdate
from remediations.lock import EnvironmentLock
from remediations.outcome import Outcome
from remediations.plan import FileChange, Plan
from simulator.lab import Lab
from tests.remediations.conftest import lab_context, tree_hashes

REMEDIATION = LocalAgentConfigUpdate()


def _audit(daemon: Daemon) -> list[dict[str, object]]:
    return JsonlAuditLog(daemon.settings.data_dir / AUDIT_FILE).entries()


def _outcomes(daemon: Daemon) -> list[tuple[object, object]]:
    return [(e["mode"], e["outcome"]) for e in _audit(daemon)]


def test_dry_run_changes_nothing_on_disk(
    lab_copy: Lab, daemon: Daemon, ctx: RemediationContext, engine: Engine
) -> None:
    before = tree_hashes(lab_copy.root)
    first = engine.dry_run(REMEDIATION, ctx)
    second = engine.dry_run(REMEDIATION, ctx)
    assert tree_hashes(lab_copy.root) == before
    assert first.outcome is Outcome.PLANNED
    assert first.exit_code == 0
    assert first.plan is not None and second.plan is not None
    assert first.plan.digest == second.plan.digest
    assert not (daemon.settings.data_dir / "backups").exists()
    assert _outcomes(daemon) == [("dry-run", "planned"), ("dry-run", "planned")]
    stored = daemon.store.audit_entries()
    assert [(e["mode"], e["outcome"], e["actor"]) for e in stored] == [("dry-run", "planned", "tester")] * 2
    assert stored[0]["detail"]["plan"]["digest"] == first.plan.digest


def test_apply_writes_exactly_the_planned_bytes(
    lab_copy: Lab, daemon: Daemon, ctx: RemediationContext, engine: Engine
) -> None:
    planned = engine.dry_run(REMEDIATION, ctx).plan
    assert planned is not None
    (change,) = planned.files()
    result = engine.apply(REMEDIATION, ctx, expected_digest=planned.digest)
    assert result.outcome is Outcome.APPLIED, result.message
    assert result.exit_code == 0
    assert lab_copy.localagent_config.read_bytes() == change.after
    (backup,) = result.backups
    assert Path(backup).read_bytes() == change.before
    assert oct(Path(backup).stat().st_mode & 0o777) == oct(0o600)
    assert result.cleared is True
    assert result.findings_before and result.findings_after == ()
    assert not Journal(daemon.settings.data_dir, "demo").path.exists()
    assert stale_temp_files(lab_copy.localagent_config) == []
    entries = _audit(daemon)
    assert [(e["mode"], e["outcome"]) for e in entries] == [
        ("dry-run", "planned"),
        ("apply", "started"),
        ("apply", "applied"),
    ]
    applied = entries[-1]
    assert applied["backups"] == [backup]
    assert applied["target"] == str(lab_copy.localagent_config)
    assert applied["plan"]["changes"][0]["after_sha256"] == sha256(change.after)  # type: ignore[index]
    assert applied["actor"] == "tester" and applied["host"] and applied["at"]
    assert applied["run_id"] == entries[-2]["run_id"] == result.run_id
    assert daemon.store.audit_entries(1)[0]["outcome"] == "applied"


def test_second_apply_is_a_no_op(lab_copy: Lab, daemon: Daemon, ctx: RemediationContext, engine: Engine) -> None:
    assert engine.apply(REMEDIATION, ctx).outcome is Outcome.APPLIED
    applied = lab_copy.localagent_config.read_bytes()
    # The context still holds the old snapshot: the plan is made from the file as it is now.
    again = engine.apply(REMEDIATION, ctx)
    assert again.outcome is Outcome.NOTHING_TO_DO
    assert again.exit_code == 0
    assert lab_copy.localagent_config.read_bytes() == applied
    assert len(list((daemon.settings.data_dir / "backups" / "demo").iterdir())) == 1
    assert _outcomes(daemon)[-1] == ("apply", "nothing-to-do")


def test_apply_refuses_a_plan_that_changed(lab_copy: Lab, ctx: RemediationContext, engine: Engine) -> None:
    before = lab_copy.localagent_config.read_bytes()
    result = engine.apply(REMEDIATION, ctx, expected_digest="0123456789abcdef")
    assert result.outcome is Outcome.REFUSED
    assert "the plan changed since it was shown" in result.message
    assert lab_copy.localagent_config.read_bytes() == before


def test_apply_refuses_while_another_remediation_holds_the_lock(
    lab_copy: Lab, daemon: Daemon, ctx: RemediationContext, engine: Engine, now: object
) -> None:
    before = lab_copy.localagent_config.read_bytes()
    holder = EnvironmentLock(daemon.settings.data_dir, "demo", timeout=1)
    holder.acquire(remediation="sf-stage-rotation", actor="alice", now=daemon.clock())
    try:
        result = engine.apply(REMEDIATION, ctx)
    finally:
        holder.release()
    assert result.outcome is Outcome.REFUSED
    assert "sf-stage-rotation by alice@" in result.message
    assert f"pid {os.getpid()}" in result.message
    assert lab_copy.localagent_config.read_bytes() == before
    assert engine.apply(REMEDIATION, ctx).outcome is Outcome.APPLIED


class _FailingVerify(LocalAgentConfigUpdate):
    def verify(self, ctx: RemediationContext, plan: Plan) -> None:
        raise VerificationError("the agent would not accept this file")


def test_failed_verification_rolls_back(lab_copy: Lab, daemon: Daemon, ctx: RemediationContext, engine: Engine) -> None:
    before = lab_copy.localagent_config.read_bytes()
    result = engine.apply(_FailingVerify(), ctx)
    assert result.outcome is Outcome.FAILED
    assert result.exit_code == 1
    assert "the agent would not accept this file; every change was rolled back" in result.message
    assert lab_copy.localagent_config.read_bytes() == before
    assert result.rollback == (f"restore {lab_copy.localagent_config} from {result.backups[0]}: restored",)
    assert Path(result.backups[0]).read_bytes() == before
    assert _outcomes(daemon)[-2:] == [("apply", "started"), ("apply", "failed")]
    assert not Journal(daemon.settings.data_dir, "demo").path.exists()


class _TwoFiles(LocalAgentConfigUpdate):
    """Rewrites localagent-config.json, then a second file whose plan is already stale."""

    def __init__(self, other: Path) -> None:
        self.other = other

    def plan(self, ctx: RemediationContext) -> Plan:
        plan = super().plan(ctx)
        stale = FileChange(self.other, b"what the planner saw", b"new content")
        return dataclasses.replace(plan, changes=(*plan.changes, stale))


def test_a_failing_second_write_restores_the_first(
    lab_copy: Lab, daemon: Daemon, ctx: RemediationContext, engine: Engine
) -> None:
    before = lab_copy.localagent_config.read_bytes()
    other = lab_copy.root / "other.json"
    other.write_bytes(b"changed by someone since")
    result = engine.apply(_TwoFiles(other), ctx)
    assert result.outcome is Outcome.FAILED
    assert "changed since the plan was made" in result.message
    assert lab_copy.localagent_config.read_bytes() == before
    assert other.read_bytes() == b"changed by someone since"
    assert len(result.backups) == 1


class _SignalDuringApply(LocalAgentConfigUpdate):
    def __init__(self, signum: int) -> None:
        self.signum = signum

    def apply(self, ctx: RemediationContext, plan: Plan, checkpoint: Checkpoint) -> None:
        # Runs last during the rollback: a second signal then must not stop the rollback.
        checkpoint.on_rollback("signal again", self._again)
        super().apply(ctx, plan, checkpoint)
        os.kill(os.getpid(), self.signum)

    def _again(self) -> str:
        os.kill(os.getpid(), self.signum)
        return "sent"


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT])
def test_stop_signal_during_apply_rolls_back(
    lab_copy: Lab, daemon: Daemon, ctx: RemediationContext, engine: Engine, signum: int
) -> None:
    before = lab_copy.localagent_config.read_bytes()
    previous = signal.getsignal(signum)
    result = engine.apply(_SignalDuringApply(signum), ctx)
    assert signal.getsignal(signum) == previous
    name = signal.Signals(signum).name
    assert result.outcome is Outcome.ROLLED_BACK
    assert result.signal == name
    assert result.message == f"interrupted by {name}; every change was rolled back"
    assert lab_copy.localagent_config.read_bytes() == before
    assert result.rollback[-1] == "signal again: sent"
    assert _outcomes(daemon)[-1] == ("apply", "rolled-back")


def test_signal_after_the_change_is_committed_does_not_undo_it(
    lab_copy: Lab, ctx: RemediationContext, engine: Engine
) -> None:
    assert ctx.recollect is not None
    recollect = ctx.recollect

    def interrupted_recollect(sources: Sequence[str]) -> Recollection:
        os.kill(os.getpid(), signal.SIGTERM)
        return recollect(sources)

    result = engine.apply(REMEDIATION, dataclasses.replace(ctx, recollect=interrupted_recollect))
    assert result.outcome is Outcome.APPLIED
    assert result.signal == "SIGTERM"
    assert result.cleared is True
    assert b"serverCertThumbprint" in lab_copy.localagent_config.read_bytes()
    assert lab_copy.cert("ServiceFabric", "new").thumbprint.encode() in lab_copy.localagent_config.read_bytes()


def test_findings_that_do_not_clear_make_apply_exit_1(ctx: RemediationContext, engine: Engine) -> None:
    # A re-collection that still sees the old state, as when the agent rewrites its file back.
    def stale_recollect(sources: Sequence[str]) -> Recollection:
        return Recollection(ctx.snapshot, ctx.findings)

    result = engine.apply(REMEDIATION, dataclasses.replace(ctx, recollect=stale_recollect))
    assert result.outcome is Outcome.APPLIED
    assert result.cleared is False
    assert result.exit_code == 1
    assert "findings still active" in result.message


def test_no_audit_no_change(lab_copy: Lab, daemon: Daemon, ctx: RemediationContext) -> None:
    blocked = lab_copy.root / "audit-is-a-folder"
    blocked.mkdir()
    engine = Engine(
        data_dir=daemon.settings.data_dir, environment="demo", auditor=Auditor([JsonlAuditLog(blocked)]), actor="t"
    )
    before = lab_copy.localagent_config.read_bytes()
    result = engine.apply(REMEDIATION, ctx)
    assert result.outcome is Outcome.REFUSED
    assert "cannot write the audit record" in result.message
    assert lab_copy.localagent_config.read_bytes() == before
    assert not Journal(daemon.settings.data_dir, "demo").path.exists()


def test_an_unfinished_run_is_recorded_by_the_next(
    lab_copy: Lab, daemon: Daemon, ctx: RemediationContext, engine: Engine
) -> None:
    before = read_bytes(lab_copy.localagent_config)
    journal = Journal(daemon.settings.data_dir, "demo")
    # What a process killed between its journal and its first write leaves behind.
    journal.begin(
        {
            "run_id": "deadbeef" * 4,
            "remediation": REMEDIATION.name,
            "started_at": "2026-11-27T11:00:00+00:00",
            "actor": "bob",
            "backup_dir": "",
            "files": [{"path": str(lab_copy.localagent_config), "before_sha256": sha256(before), "after_sha256": "x"}],
        }
    )
    leftover = lab_copy.root / ".localagent-config.json.certmon-abc123.tmp"
    leftover.write_bytes(b'{"partial": ')
    result = engine.apply(REMEDIATION, ctx)
    assert result.outcome is Outcome.APPLIED
    assert result.recovered is not None
    assert result.recovered["files"] == {str(lab_copy.localagent_config): "before"}
    assert not leftover.exists()
    outcomes = _outcomes(daemon)
    assert outcomes == [("apply", "interrupted"), ("apply", "started"), ("apply", "applied")]
    assert _audit(daemon)[0]["run_id"] == "deadbeef" * 4


def test_no_registered_secret_reaches_the_audit(lab_copy: Lab, daemon: Daemon, engine: Engine, now: object) -> None:
    secret = "Pa55-word-next-to-the-thumbprints"
    register_secret(secret)
    text = lab_copy.localagent_config.read_text(encoding="utf-8")
    text = text.replace('"clusterId": ', f'"sqlPassword": "{secret}",\r\n        "clusterId": ')
    lab_copy.localagent_config.write_bytes(text.encode())
    daemon.collect_source("localagent")
    ctx = lab_context(daemon)
    result = engine.apply(REMEDIATION, ctx)
    assert result.outcome is Outcome.APPLIED
    assert result.plan is not None and secret in result.plan.files()[0].diff()  # it is in the diff context
    raw = (daemon.settings.data_dir / AUDIT_FILE).read_text(encoding="utf-8")
    assert secret not in raw
    assert MASK in raw
    stored = json.dumps(daemon.store.audit_entries(), default=str)
    assert secret not in stored
    assert MASK in stored
