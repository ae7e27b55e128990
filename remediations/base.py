"""The remediation contract: a name, the runbook step it serves, preconditions, a plan, apply.

A remediation is a class with a few class attributes and three verbs:

* `preconditions(ctx)` -> `Check`s, each naming what it checked and why it failed;
  evaluated on the latest collected results (`ctx.snapshot`, `ctx.findings`), using the
  same functions the evaluator uses (never copies of them);
* `plan(ctx)` -> `Plan`: reads the real targets and states exactly what would change;
  an empty plan means there is nothing to do (a second apply is a no-op);
* `apply(ctx, plan, checkpoint)`: performs the side effects through the `Checkpoint`
  (`checkpoint.write_file(change)` backs up, writes atomically and re-reads;
  `checkpoint.on_rollback(...)` registers a compensation for anything else). The default
  writes every `FileChange` of the plan, which is all a file remediation needs.
* `verify(ctx, plan)`: re-reads the targets and raises `VerificationError` unless they
  parse and carry the intended values; a failure rolls the change back.

The engine (`remediations.engine`) owns everything else: the lock, the audit, signals,
rollback, and re-collecting `sources` afterwards to report whether the findings that name
this remediation (`Finding.remediation == name`) cleared. A new remediation is one module
plus one line in `remediations.registry`, and its tests.

The context gives a remediation what it may look at without importing `daemon/`: the
snapshot and findings of the latest evaluation, the configured file locations by source
name, free-form `options` (connections and the like that later remediations need; the
daemon fills them), the clock, and a `recollect` callback.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

from collectors.model import Finding, Snapshot
from remediations.errors import RemediationError, VerificationError
from remediations.plan import Plan

__all__ = [
    "Check",
    "Recollection",
    "Remediation",
    "RemediationContext",
    "RemediationError",
    "VerificationError",
]

if TYPE_CHECKING:
    from remediations.checkpoint import Checkpoint


@dataclass(frozen=True, slots=True)
class Check:
    """One precondition and its verdict."""

    name: str
    ok: bool
    detail: str
    #: False when the evidence to decide is missing (the check fails then: missing evidence is never healthy)
    known: bool = True

    def to_dict(self) -> dict[str, Any]:
        """JSON form."""
        return {"name": self.name, "ok": self.ok, "detail": self.detail}


@dataclass(frozen=True)
class Recollection:
    """The state after re-collecting some sources: snapshot and findings of a fresh evaluation."""

    snapshot: Snapshot
    findings: tuple[Finding, ...]


Recollect = Callable[[Sequence[str]], Recollection]


@dataclass(frozen=True)
class RemediationContext:
    """What a remediation may look at: the latest results, configured locations, a clock."""

    environment: str
    snapshot: Snapshot
    findings: tuple[Finding, ...]
    now: datetime
    #: configured file locations by source name ("localagent", "clusterconfig", ...)
    files: Mapping[str, Path] = field(default_factory=dict)
    #: anything else a remediation needs from the configuration (filled by the daemon)
    options: Mapping[str, Any] = field(default_factory=dict)
    recollect: Recollect | None = None

    def file(self, source: str) -> Path | None:
        """The configured path of a file source, or None."""
        return self.files.get(source)

    def findings_for(self, remediation: str) -> list[Finding]:
        """Active findings that name a remediation."""
        return [f for f in self.findings if f.remediation == remediation]


class Remediation(ABC):
    """One remediation step an operator can plan and apply."""

    #: stable name used on the command line, in the API and in the audit
    name: ClassVar[str]
    #: one sentence, in the operator's words
    description: ClassVar[str]
    #: the runbook step (DESIGN section 2) this remediation completes
    step: ClassVar[str]
    #: sources re-collected after apply to check that the findings cleared
    sources: ClassVar[tuple[str, ...]] = ()

    @abstractmethod
    def preconditions(self, ctx: RemediationContext) -> list[Check]:
        """Every precondition, passed or failed."""

    @abstractmethod
    def plan(self, ctx: RemediationContext) -> Plan:
        """Read the targets and state exactly what apply would change."""

    def apply(self, ctx: RemediationContext, plan: Plan, checkpoint: Checkpoint) -> None:
        """Perform the plan's side effects through the checkpoint (default: write its files)."""
        for change in plan.files():
            checkpoint.write_file(change)
        if len(plan.files()) != len(plan.changes):
            raise RemediationError(f"{self.name}: plan has changes the default apply cannot perform")

    def verify(self, ctx: RemediationContext, plan: Plan) -> None:  # noqa: B027 - optional hook
        """Re-read the targets and raise VerificationError unless they carry the intended values."""
