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

The re-encryption duration is the configured one: certmon does not yet measure it (no public
table reports re-encryption progress; see DESIGN section 4).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from collectors.model import Generation

if TYPE_CHECKING:
    from daemon.evaluator import Evaluation
    from daemon.settings import Settings

SF_EXPIRY_MARGIN = timedelta(days=30)
DATA_ENCRYPTION = "DataEncryption"
DEFAULT_LEAD_DAYS = 14.0
DEFAULT_REENCRYPTION_DAYS = 14.0
METRIC = "certmon_rotation_start_by_timestamp_seconds"


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
    reencryption = settings.rules.reencryption_days if settings is not None else DEFAULT_REENCRYPTION_DAYS
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
    """certmon_rotation_start_by_timestamp_seconds{environment, role, thumbprint}."""
    env = evaluation.snapshot.environment
    family = out.gauge(
        METRIC,
        "Latest moment to start the rotation of the role's certificate and finish before it expires: notAfter minus "
        "Service Fabric's 30-day expiry margin, the re-encryption days (DataEncryption) and the lead days, Unix time.",
        ("environment", "role", "thumbprint"),
    )
    for item in rotation_deadlines(evaluation, settings):
        out.add(family, (env, item.role, item.thumbprint), item.start_by.timestamp())
