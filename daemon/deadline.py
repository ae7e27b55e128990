"""The rotate-by deadline: the latest moment a rotation can start and still finish before a certificate expires.

Per role, for the newest certificate the configurations name for it (the one in use, or the one
a rotation in progress brings in), certmon exports
`certmon_rotation_start_by_timestamp_seconds` =

    notAfter
    - 30 days (Service Fabric's Security/CertificateExpirySafetyMargin: the nodes report the
      certificate close to expiry from then on, and the runbook should be over by then)
    - rules.reencryption_days, for DataEncryption only (the re-encryption job must finish while
      the old certificate still decrypts)
    - rules.rotation_lead_days (change approval, a maintenance window).

The re-encryption duration is measured when certmon has seen the job run: a progress probe
(sources.sql.probes) with a measured pace gives the whole job's duration as its volume (the
probe's total, else what remained when the pace's window began) divided by that pace; with several
probes the longest (they run side by side, as the ETA assumes). Without a measured pace
(no probe, less than a day of samples, or a job finished longer ago than the rate window) it is
`rules.reencryption_days`. `certmon_reencryption_duration_seconds{basis="measured"|"configured"}`
says which one the deadline used.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from collectors.model import Generation
from collectors.sql.reencryption import reencryption_progress

if TYPE_CHECKING:
    from daemon.evaluator import Evaluation
    from daemon.settings import Settings

SF_EXPIRY_MARGIN = timedelta(days=30)
DATA_ENCRYPTION = "DataEncryption"
DEFAULT_LEAD_DAYS = 14.0
DEFAULT_REENCRYPTION_DAYS = 14.0
METRIC = "certmon_rotation_start_by_timestamp_seconds"
DURATION_METRIC = "certmon_reencryption_duration_seconds"
MEASURED, CONFIGURED = "measured", "configured"


@dataclass(frozen=True, slots=True)
class ReencryptionDuration:
    """How long re-encryption takes, in days, and whether it was measured or configured."""

    days: float
    basis: str
    detail: str


def reencryption_duration(evaluation: Evaluation, settings: Settings | None) -> ReencryptionDuration:
    """The measured duration of the whole re-encryption job when a probe's pace is known, else the configured."""
    configured = settings.rules.reencryption_days if settings is not None else DEFAULT_REENCRYPTION_DAYS
    progress = reencryption_progress(evaluation.snapshot)
    longest: tuple[float, str] | None = None
    for item in progress.estimates if progress is not None else ():
        if not item.rate_per_hour or item.rate_since is None:
            continue
        done_since = item.rate_per_hour * (item.measured_at - item.rate_since).total_seconds() / 3600.0
        volume = item.total if item.total is not None and item.total > 0 else item.remaining + done_since
        days = volume / item.rate_per_hour / 24.0
        if longest is None or days > longest[0]:
            longest = (days, f"probe {item.probe}: {volume:g} at {item.rate_per_hour:.3g} per hour")
    if longest is None:
        return ReencryptionDuration(configured, CONFIGURED, "rules.reencryption_days")
    return ReencryptionDuration(longest[0], MEASURED, longest[1])


@dataclass(frozen=True, slots=True)
class RotateBy:
    """A role's rotate-by deadline and what it is made of."""

    role: str
    thumbprint: str
    not_after: datetime
    start_by: datetime
    reencryption_days: float
    lead_days: float


def rotation_deadlines(evaluation: Evaluation, settings: Settings | None) -> Iterator[RotateBy]:
    """One deadline per role, from the newest-generation certificate referenced for it that certmon has seen."""
    lead = settings.rules.rotation_lead_days if settings is not None else DEFAULT_LEAD_DAYS
    reencryption = reencryption_duration(evaluation, settings).days
    seen = {obs.thumbprint: obs.certificate for obs in evaluation.snapshot.certificates()}
    chosen: dict[str, tuple[str, datetime]] = {}
    for ref in evaluation.references:
        if ref.generation is not Generation.NEW or not ref.role or ref.thumbprint not in seen:
            continue
        not_after = seen[ref.thumbprint].not_after
        current = chosen.get(ref.role)
        if current is None or not_after < current[1]:
            chosen[ref.role] = (ref.thumbprint, not_after)
    for role in sorted(chosen):
        thumbprint, not_after = chosen[role]
        days = (reencryption if role == DATA_ENCRYPTION else 0.0) + lead
        start_by = not_after - SF_EXPIRY_MARGIN - timedelta(days=days)
        yield RotateBy(role, thumbprint, not_after, start_by, reencryption if role == DATA_ENCRYPTION else 0.0, lead)


def deadline_families(evaluation: Evaluation, settings: Settings | None, out: Any) -> None:
    """certmon_rotation_start_by_timestamp_seconds{environment, role, thumbprint} and the duration it used."""
    env = evaluation.snapshot.environment
    family = out.gauge(
        METRIC,
        "Latest moment to start the rotation of the role's certificate and finish before it expires: notAfter minus "
        "Service Fabric's 30-day expiry margin, the re-encryption days (DataEncryption) and the lead days, Unix time.",
        ("environment", "role", "thumbprint"),
    )
    for item in rotation_deadlines(evaluation, settings):
        out.add(family, (env, item.role, item.thumbprint), item.start_by.timestamp())
    duration = reencryption_duration(evaluation, settings)
    used = out.gauge(
        DURATION_METRIC,
        "Re-encryption duration the DataEncryption rotate-by deadline uses: measured from the progress probes' pace "
        "when known (basis measured), else rules.reencryption_days (basis configured), in seconds.",
        ("environment", "basis"),
    )
    out.add(used, (env, duration.basis), duration.days * 86400.0)
