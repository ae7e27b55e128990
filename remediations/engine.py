"""Running a remediation: assess, dry run, or apply with lock, journal, backups, rollback and audit.

Dry run is the default everywhere and differs from apply only where a side effect would
happen: preconditions and the plan (reading the real targets, computing the diff) run in
both. Apply then:

1. refuses when a precondition fails, naming it;
2. takes the environment lock (waiting up to `lock_timeout`), records any run a killed
   process left unfinished, removes its temporary files, and plans again under the lock
   (a concurrent apply that finished first leaves nothing to do);
3. writes the intent journal and a `started` audit record (no audit, no change);
4. applies through a `Checkpoint` (backup, atomic write, re-read) and verifies; an error or a
   stop signal rolls every change back;
5. re-collects the remediation's sources and reports whether the findings naming it cleared;
6. records the outcome and clears the journal.
"""

from __future__ import annotations

import getpass
import logging
import socket
import uuid
from collections.abc import Callable
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from collectors.errors import CertmonError
from collectors.model import Finding
from remediations.audit import AuditError, Auditor, AuditRecord
from remediations.base import Check, Remediation, RemediationContext, RemediationError
from remediations.checkpoint import Checkpoint
from remediations.files import remove_stale_temp_files
from remediations.journal import Journal, file_states, remove_backup_leftovers
from remediations.lock import EnvironmentLock
from remediations.outcome import APPLY, DRY_RUN, Availability, Outcome, Result
from remediations.plan import Plan
from remediations.signals import Interrupted, SignalGuard

log = logging.getLogger("certmon.remediations")


def _utc_now() -> datetime:
    return datetime.now(UTC)


def current_user() -> str:
    """The operating-system user running certmon."""
    try:
        return getpass.getuser()
    except (OSError, KeyError, ImportError):
        return "unknown"


class Engine:
    """Runs remediations of one environment; the only place that performs their side effects."""

    def __init__(
        self,
        *,
        data_dir: Path,
        environment: str,
        auditor: Auditor,
        actor: str | None = None,
        host: str | None = None,
        clock: Callable[[], datetime] = _utc_now,
        lock_timeout: float = 30.0,
    ) -> None:
        self.data_dir = data_dir
        self.environment = environment
        self.auditor = auditor
        self.actor = actor or current_user()
        self.host = host or socket.gethostname()
        self.clock = clock
        self.lock_timeout = lock_timeout
        self.journal = Journal(data_dir, environment)

    # -- shared steps ----------------------------------------------------------------------

    def _checks(self, remediation: Remediation, ctx: RemediationContext) -> tuple[Check, ...]:
        try:
            return tuple(remediation.preconditions(ctx))
        except CertmonError as err:
            return (Check("preconditions evaluated", False, str(err)),)

    def _audit(self, result: Result, *, required: bool = False) -> tuple[str, ...]:
        plan = result.plan
        record = AuditRecord(
            run_id=result.run_id,
            at=self.clock(),
            actor=self.actor,
            host=self.host,
            environment=self.environment,
            remediation=result.remediation,
            target=plan.target if plan is not None else "",
            mode=result.mode,
            outcome=str(result.outcome),
            message=result.message,
            plan=plan.to_dict() if plan is not None else None,
            backups=result.backups,
            detail={
                "checks": [c.to_dict() for c in result.checks if not c.ok],
                "rollback": list(result.rollback),
                "cleared": result.cleared,
                "signal": result.signal,
                "findings_after": [f.message for f in result.findings_after or ()],
                **({"recovered": result.recovered} if result.recovered else {}),
            },
        )
        return tuple(self.auditor.record(record, required=required))

    def _finish(self, result: Result) -> Result:
        failures = self._audit(result)
        return replace(result, audit_failures=failures) if failures else result

    # -- assess and dry run ------------------------------------------------------------------

    def assess(self, remediation: Remediation, ctx: RemediationContext) -> Availability:
        """Whether the remediation applies now (preconditions pass and the plan changes something)."""
        findings = tuple(ctx.findings_for(remediation.name))
        checks = self._checks(remediation, ctx)
        failed = [c for c in checks if not c.ok]
        if failed:
            return Availability(remediation, False, f"{failed[0].name}: {failed[0].detail}", checks, None, findings)
        try:
            plan = remediation.plan(ctx)
        except CertmonError as err:
            return Availability(remediation, False, f"cannot plan: {err}", checks, None, findings)
        if plan.empty:
            return Availability(remediation, False, f"nothing to change: {plan.reason}", checks, plan, findings)
        return Availability(remediation, True, "; ".join(c.summary() for c in plan.changes), checks, plan, findings)

    def dry_run(self, remediation: Remediation, ctx: RemediationContext) -> Result:
        """Everything up to the side effect, for real: preconditions, reading, planning, diff."""
        run = Result(uuid.uuid4().hex, remediation.name, DRY_RUN, Outcome.STARTED, "")
        run = replace(
            run, checks=self._checks(remediation, ctx), findings_before=tuple(ctx.findings_for(remediation.name))
        )
        refused = self._refusal(run)
        if refused is not None:
            return self._finish(refused)
        try:
            plan = remediation.plan(ctx)
        except CertmonError as err:
            return self._finish(replace(run, outcome=Outcome.FAILED, message=f"cannot plan: {err}"))
        if plan.empty:
            return self._finish(
                replace(run, outcome=Outcome.NOTHING_TO_DO, message=f"nothing to change: {plan.reason}", plan=plan)
            )
        message = "dry run: nothing was changed; run again with --apply to apply"
        return self._finish(replace(run, outcome=Outcome.PLANNED, message=message, plan=plan))

    @staticmethod
    def _refusal(run: Result) -> Result | None:
        failed = [c for c in run.checks if not c.ok]
        if not failed:
            return None
        message = "; ".join(f"precondition failed: {c.name}: {c.detail}" for c in failed)
        return replace(run, outcome=Outcome.REFUSED, message=message)

    # -- apply -----------------------------------------------------------------------------

    def apply(self, remediation: Remediation, ctx: RemediationContext, expected_digest: str | None = None) -> Result:
        """Apply under the environment lock; refuses on a failed precondition or a changed plan."""
        run = Result(uuid.uuid4().hex, remediation.name, APPLY, Outcome.STARTED, "")
        run = replace(
            run, checks=self._checks(remediation, ctx), findings_before=tuple(ctx.findings_for(remediation.name))
        )
        refused = self._refusal(run)
        if refused is not None:
            return self._finish(refused)
        lock = EnvironmentLock(self.data_dir, self.environment, self.lock_timeout)
        try:
            lock.acquire(remediation=remediation.name, actor=self.actor, now=self.clock())
        except RemediationError as err:  # busy, or the lock folder is not writable
            return self._finish(replace(run, outcome=Outcome.REFUSED, message=str(err)))
        try:
            with SignalGuard() as guard:
                return self._apply_locked(remediation, ctx, run, guard=guard, expected_digest=expected_digest)
        finally:
            lock.release()

    def _recover(self) -> dict[str, Any] | None:
        entry = self.journal.pending()
        if entry is None:
            return None
        states = file_states(entry)
        remove_backup_leftovers(entry)
        recovered = {
            "run_id": entry.get("run_id", ""),
            "remediation": entry.get("remediation", ""),
            "started_at": entry.get("started_at", ""),
            "actor": entry.get("actor", ""),
            "files": states,
            "backup_dir": entry.get("backup_dir", ""),
            **({"corrupt": entry["corrupt"]} if "corrupt" in entry else {}),
        }
        described = ", ".join(f"{path} holds the {state} content" for path, state in states.items()) or "no files"
        log.warning("a previous run did not finish: %s", described)
        record = AuditRecord(
            run_id=str(entry.get("run_id", "")),
            at=self.clock(),
            actor=self.actor,
            host=self.host,
            environment=self.environment,
            remediation=str(entry.get("remediation", "")),
            target=", ".join(states),
            mode=APPLY,
            outcome=str(Outcome.INTERRUPTED),
            message=f"run started at {entry.get('started_at', '?')} did not finish: {described}",
            detail={"recovered": recovered},
        )
        self.auditor.record(record, required=True)
        self.journal.finish()
        return recovered

    def _apply_locked(
        self,
        remediation: Remediation,
        ctx: RemediationContext,
        run: Result,
        *,
        guard: SignalGuard,
        expected_digest: str | None,
    ) -> Result:
        try:
            run = replace(run, recovered=self._recover())
        except CertmonError as err:
            message = f"cannot record the unfinished earlier run: {err}; nothing was changed"
            return self._finish(replace(run, outcome=Outcome.FAILED, message=message))
        try:
            plan = remediation.plan(ctx)
            for change in plan.files():
                remove_stale_temp_files(change.path)
        except CertmonError as err:
            return self._finish(replace(run, outcome=Outcome.FAILED, message=f"cannot plan: {err}"))
        run = replace(run, plan=plan)
        if expected_digest is not None and plan.digest != expected_digest:
            message = f"the plan changed since it was shown (digest {plan.digest}, expected {expected_digest})"
            return self._finish(replace(run, outcome=Outcome.REFUSED, message=message))
        if plan.empty:
            return self._finish(
                replace(run, outcome=Outcome.NOTHING_TO_DO, message=f"nothing to change: {plan.reason}")
            )
        if guard.pending is not None:
            message = f"stopped by {guard.pending_name} before any change"
            return self._finish(replace(run, outcome=Outcome.REFUSED, message=message, signal=guard.pending_name))
        started = self.clock()
        folder = f"{started:%Y%m%dT%H%M%SZ}-{remediation.name}-{run.run_id[:8]}"
        backup_dir = self.data_dir / "backups" / self.environment / folder
        try:
            self._begin_journal(run, plan, started, backup_dir)
        except CertmonError as err:
            return self._finish(replace(run, outcome=Outcome.FAILED, message=f"{err}; nothing was changed"))
        try:
            self._audit(replace(run, message="applying"), required=True)
        except AuditError as err:
            self.journal.finish()
            return replace(run, outcome=Outcome.REFUSED, message=f"{err}; nothing was changed")
        checkpoint = Checkpoint(backup_dir)
        failure: BaseException | None = None
        try:
            try:
                guard.armed = True
                remediation.apply(ctx, plan, checkpoint)
                remediation.verify(ctx, plan)
                guard.armed = False
            except (Exception, KeyboardInterrupt) as err:  # noqa: BLE001 - any failure means roll back
                guard.armed = False
                failure = err
        except Interrupted as err:
            # The one signal the guard raises arrived while the first handler was still running.
            failure = err
        run = replace(run, backups=tuple(str(p) for p in checkpoint.backups))
        if failure is not None:
            return self._rolled_back(run, checkpoint, failure)
        findings_after, note = self._recollect(remediation, ctx)
        message = f"applied and verified{note}"
        if findings_after:
            message += "; findings still active: " + "; ".join(f.message for f in findings_after)
        result = replace(
            run, outcome=Outcome.APPLIED, message=message, findings_after=findings_after, signal=guard.pending_name
        )
        result = self._finish(result)
        self.journal.finish()
        return result

    def _begin_journal(self, run: Result, plan: Plan, started: datetime, backup_dir: Path) -> None:
        self.journal.begin(
            {
                "run_id": run.run_id,
                "remediation": run.remediation,
                "started_at": started.isoformat(),
                "actor": self.actor,
                "backup_dir": str(backup_dir),
                "files": [
                    {"path": str(c.path), "before_sha256": c.before_sha256, "after_sha256": c.after_sha256}
                    for c in plan.files()
                ],
            }
        )

    def _rolled_back(self, run: Result, checkpoint: Checkpoint, failure: BaseException) -> Result:
        done, undo_failed = checkpoint.rollback()
        # A signal can land between mkstemp and the write's own clean-up; under the lock, no other
        # writer owns a temporary file of these targets, so whatever is left is this run's.
        for change in run.plan.files() if run.plan is not None else ():
            try:
                remove_stale_temp_files(change.path)
            except CertmonError as err:
                undo_failed.append(f"remove temporary files next to {change.path}: {err}")
        signal_name: str | None = None
        if isinstance(failure, Interrupted):
            signal_name = failure.signal_name
        elif isinstance(failure, KeyboardInterrupt):
            signal_name = "SIGINT"
        reason = f"interrupted by {signal_name}" if signal_name else f"{type(failure).__name__}: {failure}"
        if undo_failed:
            message = f"{reason}; ROLLBACK INCOMPLETE: {'; '.join(undo_failed)}; restore from the backups by hand"
        else:
            message = f"{reason}; every change was rolled back"
        if signal_name is None and not isinstance(failure, CertmonError):
            log.error("remediation %s failed", run.remediation, exc_info=failure)
        result = replace(
            run,
            outcome=Outcome.ROLLED_BACK if signal_name else Outcome.FAILED,
            message=message,
            rollback=tuple(done + undo_failed),
            signal=signal_name,
        )
        result = self._finish(result)
        self.journal.finish()
        return result

    def _recollect(self, remediation: Remediation, ctx: RemediationContext) -> tuple[tuple[Finding, ...] | None, str]:
        if ctx.recollect is None or not remediation.sources:
            return None, "; not re-collected"
        try:
            after = ctx.recollect(remediation.sources)
        except Exception as err:  # noqa: BLE001 - the change is committed; report, do not undo
            log.error("re-collecting %s failed: %s", ", ".join(remediation.sources), err)
            return None, f"; re-collecting {', '.join(remediation.sources)} failed: {err}"
        remaining = tuple(f for f in after.findings if f.remediation == remediation.name)
        cleared = "the findings cleared" if not remaining else "the findings did not clear"
        return remaining, f"; re-collected {', '.join(remediation.sources)}: {cleared}"
