"""The rotation checklist's vocabulary: step states with their evidence, and old certificates."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from enum import StrEnum

from daemon.context import Context


class StepStatus(StrEnum):
    """Where one runbook step stands; unknown whenever the evidence is missing, never done."""

    DONE = "done"
    PENDING = "pending"
    NOT_APPLICABLE = "not-applicable"
    UNKNOWN = "unknown"

    @property
    def satisfied(self) -> bool:
        """True when nothing is left to do for the step."""
        return self in (StepStatus.DONE, StepStatus.NOT_APPLICABLE)


@dataclass(frozen=True)
class Verdict:
    """What a step decided and why: a one-line detail and the evidence lines behind it."""

    status: StepStatus
    detail: str
    evidence: tuple[str, ...] = ()


def done(detail: str, *evidence: str) -> Verdict:
    """The evidence shows the step finished."""
    return Verdict(StepStatus.DONE, detail, evidence)


def pending(detail: str, *evidence: str) -> Verdict:
    """The evidence shows work left."""
    return Verdict(StepStatus.PENDING, detail, evidence)


def not_applicable(detail: str, *evidence: str) -> Verdict:
    """The step does not apply to this rotation."""
    return Verdict(StepStatus.NOT_APPLICABLE, detail, evidence)


def unknown(detail: str, *evidence: str) -> Verdict:
    """No evidence either way; the detail says which source would decide."""
    return Verdict(StepStatus.UNKNOWN, detail, evidence)


@dataclass(frozen=True)
class StepState:
    """One runbook step of DESIGN section 2, decided from evidence."""

    step: str
    title: str
    status: StepStatus
    detail: str
    evidence: tuple[str, ...] = ()


Decide = Callable[[Context, Mapping[str, StepState]], Verdict]


@dataclass(frozen=True)
class Step:
    """A runbook step: its id, its title in the runbook's words, and the function that decides it.

    `decide` sees the states of the steps before it, in checklist order.
    """

    id: str
    title: str
    decide: Decide


@dataclass(frozen=True)
class OldCertificate:
    """A previous-generation certificate and whether it may be deleted from the nodes now."""

    role: str
    thumbprint: str
    safe_to_remove: bool
    blocking: tuple[str, ...]
    detail: str


@dataclass(frozen=True)
class Checklist:
    """The rotation checklist of one evaluation."""

    steps: tuple[StepState, ...] = ()
    old_certificates: tuple[OldCertificate, ...] = ()

    def state(self, step: str) -> StepState | None:
        """The state of one step."""
        return next((s for s in self.steps if s.step == step), None)
