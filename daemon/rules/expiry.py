"""Expiry findings: expired, not yet valid, and inside a role's warning or critical window."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Sequence

from collectors.model import CertObservation, CertReference, Finding, Generation, Severity
from daemon.context import Context
from daemon.rules.adfsrollover import superseded_token_certificates
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
    """Expired, not yet valid, and inside the role's warning or critical window.

    An AD FS token certificate that a newer one of its role has replaced (still published until it
    expires) gets no warning or critical window: the expiry that matters is the new one's.
    """
    superseded = superseded_token_certificates(ctx)
    successors = rotated_out(ctx.references)
    windows: dict[str, ExpiryWindow] = {}
    for thumbprint, observations in by_thumbprint(ctx.snapshot.certificates()).items():
        cert = observations[0].certificate
        roles = ctx.roles.get(thumbprint, ())
        if not roles and not ctx.settings.unreferenced_certificates:
            continue
        days = cert.days_left(ctx.now)
        early = cert.not_before > ctx.now
        worded = False
        for role in roles or ("",):
            window = windows.get(role)
            if window is None:
                window = windows[role] = ctx.settings.expiry_window(role)
            # Most certificates of a large store are fine: decide first, word the message only when needed.
            if not early and days > window.warning_days:
                continue
            if not worded:
                node = observations[0].node if len({o.node for o in observations}) == 1 else ""
                label = cert.subject_cn or cert.subject or thumbprint
                seen = where(observations)
                worded = True
            role_text = f"{role} certificate" if role else "certificate"
            common = {"role": role, "thumbprint": thumbprint, "node": node, "step": "certs-generated"}
            if early:
                yield Finding(
                    "cert-not-yet-valid",
                    Severity.WARNING,
                    f"{role_text} {label} ({thumbprint}) is not valid before "
                    f"{cert.not_before:%Y-%m-%d %H:%M}Z; seen on {seen}",
                    **common,
                )
            if days <= 0:
                yield Finding(
                    "cert-expired",
                    Severity.CRITICAL,
                    f"{role_text} {label} ({thumbprint}) expired on {cert.not_after:%Y-%m-%d}; seen on {seen}",
                    **common,
                )
                continue
            if (role, thumbprint) in superseded:
                continue
            if days <= window.critical_days:
                rule, severity = "cert-expiry-critical", Severity.CRITICAL
            elif days <= window.warning_days:
                rule, severity = "cert-expiry-warning", Severity.WARNING
            else:
                continue
            successor = successors.get((role, thumbprint))
            # A previous-generation certificate on its way out is told apart from a current one: the fix
            # is to finish the rotation (and keep it until then), not to start one.
            generation = (
                f" (previous generation, being rotated out to {successor}: finish the rotation before it expires)"
                if successor
                else ""
            )
            yield Finding(
                rule,
                severity,
                f"{role_text} {label} ({thumbprint}){generation} expires in {days:.0f} days "
                f"({cert.not_after:%Y-%m-%d}); seen on {seen}",
                **common,
            )


def rotated_out(references: Iterable[CertReference]) -> dict[tuple[str, str], str]:
    """(role, thumbprint) of previous-generation certificates whose role has a new one -> the new thumbprint(s)."""
    new: dict[str, set[str]] = {}
    old: set[tuple[str, str]] = set()
    for ref in references:
        if not ref.thumbprint:
            continue
        if ref.generation is Generation.NEW:
            new.setdefault(ref.role, set()).add(ref.thumbprint)
        else:
            old.add((ref.role, ref.thumbprint))
    return {
        (role, thumbprint): ", ".join(sorted(new[role] - {thumbprint}))
        for role, thumbprint in old
        if new.get(role, set()) - {thumbprint}
    }
