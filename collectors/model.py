"""The shared domain model: what collectors observe, their health, and the immutable snapshot."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import Any, TypeVar

from collectors.certificate import Certificate
from collectors.errors import Reason

T = TypeVar("T")

# Stores as Windows names them; the certificate-folder source uses the same labels.
DEFAULT_STORE = "LocalMachine\\My"


class Generation(StrEnum):
    """Which side of a rotation a configuration reference belongs to."""

    NEW = "new"
    OLD = "old"


@dataclass(frozen=True, slots=True)
class CertObservation:
    """A certificate found at one location (a node's store, an endpoint, a file)."""

    certificate: Certificate
    source: str
    node: str
    store: str = DEFAULT_STORE
    has_private_key: bool | None = None
    key_provider: str | None = None
    location: str = ""

    @property
    def thumbprint(self) -> str:
        """The certificate's Windows thumbprint."""
        return self.certificate.thumbprint


@dataclass(frozen=True, slots=True)
class CertReference:
    """A configuration that names a certificate by thumbprint for a role."""

    role: str
    thumbprint: str
    generation: Generation
    reference: str
    source: str
    node: str = ""

    @property
    def generated(self) -> bool:
        """False when the configuration has an empty thumbprint (certificate not generated yet)."""
        return bool(self.thumbprint)


@dataclass(frozen=True, slots=True)
class Problem:
    """A non-fatal problem inside an otherwise good collection (one bad file in a folder)."""

    reason: Reason
    message: str


@dataclass(frozen=True, slots=True)
class MetricSpec:
    """One source-specific metric, described as data: the exporter adds `environment`."""

    name: str
    documentation: str
    labels: tuple[str, ...]
    samples: Callable[[Any, str], Iterable[tuple[tuple[str, ...], float]]]
    kind: str = "gauge"
    #: value of every series while the target's latest collection fails (None: keep the last values)
    stale_value: float | None = None
    #: samples for a target that failed before any collection succeeded (a name that never resolved):
    #: a success metric reads 0 then instead of being absent
    no_data: Callable[[str], Iterable[tuple[tuple[str, ...], float]]] | None = None


@dataclass(frozen=True, slots=True)
class Observation:
    """What one successful collection of one target found."""

    certificates: tuple[CertObservation, ...] = ()
    references: tuple[CertReference, ...] = ()
    facts: Any = None
    problems: tuple[Problem, ...] = ()


@dataclass(frozen=True, slots=True)
class Health:
    """The outcome of the latest attempt to collect one target."""

    ok: bool
    reason: Reason | None
    message: str
    duration_seconds: float
    attempted_at: datetime
    last_success_at: datetime | None


@dataclass(frozen=True, slots=True)
class SourceResult:
    """Latest health of one (source, target) and its last good observation."""

    source: str
    target: str
    health: Health
    observation: Observation | None
    errors_total: Mapping[Reason, int] = field(default_factory=dict)

    @property
    def stale(self) -> bool:
        """True when the data shown is from an earlier, successful attempt."""
        return not self.health.ok and self.observation is not None

    def age_seconds(self, now: datetime) -> float | None:
        """Seconds since the data was collected, or None when never collected."""
        last = self.health.last_success_at
        return None if last is None else max(0.0, (now - last).total_seconds())


@dataclass(frozen=True)
class Snapshot:
    """Every source's latest result at one moment; never mutated, replaced whole."""

    environment: str
    taken_at: datetime
    results: Mapping[tuple[str, str], SourceResult]

    def __iter__(self) -> Iterator[SourceResult]:
        return iter(self.results.values())

    def of_source(self, source: str) -> list[SourceResult]:
        """Results of one source, one per target."""
        return [r for r in self.results.values() if r.source == source]

    def has_source(self, source: str) -> bool:
        """True when the source is configured (has at least one target)."""
        return any(r.source == source for r in self.results.values())

    def facts(self, source: str, kind: type[T]) -> list[tuple[str, T]]:
        """(target, facts) of a source's last good observations whose facts are of `kind`."""
        out = []
        for r in self.of_source(source):
            if r.observation is not None and isinstance(r.observation.facts, kind):
                out.append((r.target, r.observation.facts))
        return out

    def certificates(self) -> Iterator[CertObservation]:
        """Every certificate observation, stale data included."""
        for r in self.results.values():
            if r.observation is not None:
                yield from r.observation.certificates

    def references(self) -> Iterator[CertReference]:
        """Every configuration reference, stale data included."""
        for r in self.results.values():
            if r.observation is not None:
                yield from r.observation.references


class Severity(StrEnum):
    """How soon a finding needs a person."""

    CRITICAL = "critical"
    WARNING = "warning"
    INFO = "info"


@dataclass(frozen=True, slots=True)
class Finding:
    """One active problem, in the operator's words, with the step and remediation that fix it."""

    rule: str
    severity: Severity
    message: str
    role: str = ""
    thumbprint: str = ""
    node: str = ""
    source: str = ""
    target: str = ""
    step: str = ""
    remediation: str = ""

    def key(self) -> tuple[str, str, str, str, str, str]:
        """Identity of the finding across evaluations."""
        return (self.rule, self.role, self.thumbprint, self.node, self.source, self.target)
