"""Expiry findings: expired, not yet valid, and inside a role's warning or critical window."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Sequence

from collectors.model import CertObservation, Finding, Severity
from daemon.context import Context
from daemon.settings import ExpiryWindow


def by_thumbprint(certs: Iterable[CertObservation]) -> dict[str, list[CertObservation]]:
    """Observations grouped by certificate."""
    grouped: dict[str, list[CertObservation]] = defaultdict(list)
    for obs in certs:
        grouped[obs.thumbprint].append(obs)
    return grouped


def where(observations: Sequence[CertObservation]) -> str:
    """The nodes a certificate was seen on, for a message."""
    nodes = sorted({o.node for o in observations})
    if len(nodes) <= 3:
        return ", ".join(nodes)
    return f"{', '.join(nodes[:3])} and {len(nodes) - 3} more"


def expiry_findings(ctx: Context) -> Iterable[Finding]:
    """Expired, not yet valid, and inside the role's warning or critical window."""
    windows: dict[str, ExpiryWindow] = {}
    for thumbprint, observations in by_thumbprint(ctx.snapshot.certificates()).items():
        cert = observations[0].certificate
        roles = ctx.roles.get(thumbprint, ())
        if not roles and not ctx.settings.unreferenced_certificates:
            continue
        days = cert.days_left(ctx.now)
        early = cert.not_before > ctx.now
        for role in roles or ("",):
            window = windows.get(role)
            if window is None:
                window = windows[role] = ctx.settings.expiry_window(role)
            # Most certificates of a large store are fine: decide first, word the message only when needed.
            if not early and days > window.warning_days:
                continue
            yield from _role_findings(ctx, observations, role, days, window)


def _role_findings(
    ctx: Context,
    observations: Sequence[CertObservation],
    role: str,
    days: float,
    window: ExpiryWindow,
) -> Iterable[Finding]:
    cert = observations[0].certificate
    thumbprint = cert.thumbprint
    node = observations[0].node if len({o.node for o in observations}) == 1 else ""
    label = cert.subject_cn or cert.subject or thumbprint
    seen = where(observations)
    role_text = f"{role} certificate" if role else "certificate"
    common = {"role": role, "thumbprint": thumbprint, "node": node, "step": "certs-generated"}
    if cert.not_before > ctx.now:
        yield Finding(
            "cert-not-yet-valid",
            Severity.WARNING,
            f"{role_text} {label} ({thumbprint}) is not valid before {cert.not_before:%Y-%m-%d %H:%M}Z; seen on {seen}",
            **common,
        )
    if days <= 0:
        yield Finding(
            "cert-expired",
            Severity.CRITICAL,
            f"{role_text} {label} ({thumbprint}) expired on {cert.not_after:%Y-%m-%d}; seen on {seen}",
            **common,
        )
        return
    if days <= window.critical_days:
        rule, severity = "cert-expiry-critical", Severity.CRITICAL
    elif days <= window.warning_days:
        rule, severity = "cert-expiry-warning", Severity.WARNING
    else:
        return
    yield Finding(
        rule,
        severity,
        f"{role_text} {label} ({thumbprint}) expires in {days:.0f} days ({cert.not_after:%Y-%m-%d}); seen on {seen}",
        **common,
    )
