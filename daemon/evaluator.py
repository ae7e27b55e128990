"""The evaluator: findings and the rotation checklist as pure functions of (snapshot, history, clock, settings).

The rules live in `daemon.rules` (one module per concern, registered in `RULES`); the
runbook steps in `daemon.rotation` (`STEPS`). This module runs both on one snapshot.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime

from collectors.model import CertReference, Finding, Severity, Snapshot
from daemon.context import Context, resolve_references, role_index, template_generations
from daemon.history import History
from daemon.rotation import STEPS, Checklist, Step, checklist
from daemon.rules import RULES, Rule, with_remediation
from daemon.settings import Settings
from daemon.stateschema import LocationHistory


@dataclass(frozen=True)
class Evaluation:
    """Everything derived from one snapshot: resolved references, roles, findings and the checklist."""

    snapshot: Snapshot
    references: tuple[CertReference, ...]
    roles: Mapping[str, tuple[str, ...]]
    findings: tuple[Finding, ...]
    evaluated_at: datetime
    checklist: Checklist = field(default_factory=Checklist)


def evaluate(
    snapshot: Snapshot,
    history: History | Sequence[LocationHistory],
    now: datetime,
    settings: Settings,
    *,
    rules: Sequence[Rule] = tuple(RULES),
    steps: Sequence[Step] = tuple(STEPS),
) -> Evaluation:
    """Decide the rotation checklist, then run every rule on one snapshot."""
    ctx = Context.build(snapshot, history, now, settings)
    decided = checklist(ctx, list(steps))
    findings: dict[tuple[str, ...], Finding] = {}
    for rule in rules:
        for finding in rule(ctx):
            findings.setdefault(finding.key(), with_remediation(finding))
    ordered = sorted(findings.values(), key=lambda f: (_SEVERITY_ORDER[f.severity], f.rule, f.key()))
    return Evaluation(snapshot, ctx.references, ctx.roles, tuple(ordered), now, decided)


_SEVERITY_ORDER = {Severity.CRITICAL: 0, Severity.WARNING: 1, Severity.INFO: 2}

__all__ = [
    "RULES",
    "STEPS",
    "Context",
    "Evaluation",
    "Rule",
    "evaluate",
    "resolve_references",
    "role_index",
    "template_generations",
]
