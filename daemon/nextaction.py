"""The next action: the first runbook step that is not done, what blocks it, and the remediation that serves it.

Pure: built from the evaluation and the remediation registry, once per view, for the status
page, `certmon status` and `/api/status`. Whether a remediation applies right now is decided by
its own preconditions when it is planned, so the next action names its dry-run command.
"""

from __future__ import annotations

from typing import Any

from collectors.model import Finding, Severity
from daemon.evaluator import Evaluation
from daemon.rotation import StepStatus
from daemon.rules.expiry import rotated_out
from remediations.registry import REMEDIATIONS

#: Findings of the step quoted as what blocks it.
BLOCKERS = 3


def remediations_for_step(step: str) -> list[str]:
    """The remediations that complete a runbook step, in registration order."""
    return [name for name, kind in REMEDIATIONS.items() if kind.step == step]


def dry_run_command(remediation: str) -> str:
    """The command that shows what a remediation would change (it changes nothing)."""
    return f"certmon remediate {remediation}"


def next_action(evaluation: Evaluation) -> dict[str, Any]:
    """The next thing the operator should do, as JSON-ready data (`kind` says which sort of answer it is)."""
    urgent = _urgent_finding(evaluation)
    steps = evaluation.checklist.steps
    pending = next((s for s in steps if s.status is StepStatus.PENDING), None)
    unknown = next((s for s in steps if s.status is StepStatus.UNKNOWN), None)
    if urgent is not None:
        names = [urgent.remediation] if urgent.remediation else []
        others = sum(1 for f in evaluation.findings if f.severity is Severity.CRITICAL) - 1
        more = f" (and {others} more critical finding{'s' if others > 1 else ''})" if others else ""
        return _answer("critical-finding", urgent.step, f"{urgent.rule}: {urgent.message}{more}", names, [])
    if pending is not None:
        blockers = [f.message for f in evaluation.findings if f.step == pending.step][:BLOCKERS]
        what = f"{pending.title}: {pending.detail}"
        return _answer("pending-step", pending.step, what, remediations_for_step(pending.step), blockers)
    if unknown is not None:
        return _answer(
            "unknown-step",
            unknown.step,
            f"certmon cannot decide {unknown.title!r}: {unknown.detail}",
            [],
            [],
        )
    return _answer("nothing", "", "Nothing to do: every rotation step is done or does not apply.", [], [])


_EXPIRY_RULES = frozenset({"cert-expiry-critical", "cert-expiry-warning"})

#: Critical findings whose damage is happening now, first among critical findings.
_DAMAGE_FIRST = (
    "data-encryption-old-cert-removed-early",
    "old-cert-removed-early",
    "reencryption-eta-after-old-cert-expiry",
    "reencryption-stalled",
    "sf-upgrade-stuck",
    "credentials-json-on-old-cert",
)


def _urgent_finding(evaluation: Evaluation) -> Finding | None:
    # A critical finding comes before the checklist: the damage in progress first, then the
    # certificates something uses, then the rest. The expiry window of a previous-generation
    # certificate is left to the checklist: finishing the rotation is its fix.
    outgoing = rotated_out(evaluation.references)
    candidates = [
        f
        for f in evaluation.findings
        if f.severity is Severity.CRITICAL and not (f.rule in _EXPIRY_RULES and (f.role, f.thumbprint) in outgoing)
    ]

    def rank(finding: Finding) -> tuple[int, int]:
        damage = _DAMAGE_FIRST.index(finding.rule) if finding.rule in _DAMAGE_FIRST else len(_DAMAGE_FIRST)
        return damage, 0 if finding.role else 1

    return min(candidates, key=rank, default=None)


def _answer(kind: str, step: str, what: str, remediations: list[str], blockers: list[str]) -> dict[str, Any]:
    return {
        "kind": kind,
        "step": step,
        "what": what,
        "blocked_by": blockers,
        "remediations": [{"name": name, "dry_run": dry_run_command(name)} for name in remediations],
    }
