"""How a remediation run ended: `Outcome`, the `Result` of a dry run or apply, and `Availability`."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from collectors.model import Finding
from remediations.base import Check, Remediation
from remediations.plan import Plan

DRY_RUN, APPLY = "dry-run", "apply"


class Outcome(StrEnum):
    """How one run ended."""

    PLANNED = "planned"  # dry run: the plan was shown, nothing changed
    NOTHING_TO_DO = "nothing-to-do"
    REFUSED = "refused"  # a precondition failed, the lock was busy, or the plan changed
    STARTED = "started"
    APPLIED = "applied"
    FAILED = "failed"  # an error; every change was rolled back
    ROLLED_BACK = "rolled-back"  # a stop signal; every change was rolled back
    INTERRUPTED = "interrupted"  # an earlier run died midway; recorded by the next one


def _finding_dict(finding: Finding) -> dict[str, str]:
    return {"rule": finding.rule, "severity": str(finding.severity), "message": finding.message}


@dataclass(frozen=True)
class Result:
    """What a dry run or an apply did, for the CLI, the API and the tests."""

    run_id: str
    remediation: str
    mode: str
    outcome: Outcome
    message: str
    checks: tuple[Check, ...] = ()
    plan: Plan | None = None
    backups: tuple[str, ...] = ()
    rollback: tuple[str, ...] = ()
    findings_before: tuple[Finding, ...] = ()
    #: findings naming the remediation after re-collection; None when not re-collected
    findings_after: tuple[Finding, ...] | None = None
    signal: str | None = None
    audit_failures: tuple[str, ...] = ()
    recovered: dict[str, Any] | None = None

    @property
    def cleared(self) -> bool | None:
        """Whether the findings that motivated the remediation are gone (None: not checked)."""
        return None if self.findings_after is None else not self.findings_after

    @property
    def exit_code(self) -> int:
        """0 ok; 1 refused, failed, rolled back, or applied without clearing its findings."""
        if self.outcome in (Outcome.PLANNED, Outcome.NOTHING_TO_DO):
            return 0
        if self.outcome is Outcome.APPLIED:
            return 1 if self.cleared is False else 0
        return 1

    def to_dict(self) -> dict[str, Any]:
        """JSON form."""
        return {
            "run_id": self.run_id,
            "remediation": self.remediation,
            "mode": self.mode,
            "outcome": str(self.outcome),
            "message": self.message,
            "checks": [c.to_dict() for c in self.checks],
            "plan": self.plan.to_dict() if self.plan is not None else None,
            "backups": list(self.backups),
            "rollback": list(self.rollback),
            "findings_before": [_finding_dict(f) for f in self.findings_before],
            "findings_after": None if self.findings_after is None else [_finding_dict(f) for f in self.findings_after],
            "cleared": self.cleared,
            "signal": self.signal,
            "audit_failures": list(self.audit_failures),
            "recovered": self.recovered,
        }


@dataclass(frozen=True)
class Availability:
    """Whether a remediation applies now, and why not."""

    remediation: Remediation
    applies: bool
    reason: str
    checks: tuple[Check, ...]
    plan: Plan | None
    findings: tuple[Finding, ...]

    def to_dict(self) -> dict[str, Any]:
        """JSON form."""
        r = self.remediation
        return {
            "name": r.name,
            "description": r.description,
            "step": r.step,
            "applies": self.applies,
            "reason": self.reason,
            "checks": [c.to_dict() for c in self.checks],
            "plan_digest": self.plan.digest if self.plan is not None and not self.plan.empty else None,
            "findings": [_finding_dict(f) for f in self.findings],
        }
