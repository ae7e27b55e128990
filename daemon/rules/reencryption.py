"""Findings about data re-encryption, Credentials.json and the agent share's config.json.

The old data encryption certificate is the one the ConfigTemplate pair names as old for the
DataEncryption role (after `resolve_references`); its expiry comes from the inventory. If it
expires, or is removed, before the batch job has re-encrypted everything, encrypted data is
lost: that is what these rules watch.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta

from collectors.credentials import (
    ENCIPHERMENT_ROLE,
    CredentialsFacts,
    encipherment_generations,
    recipient_index,
    value_encryptions,
)
from collectors.model import Finding, Generation, Severity
from collectors.sql.axdb import AxdbFacts
from collectors.sql.reencryption import axdb_facts, reencryption_complete, reencryption_progress
from daemon.context import Context

DATA_ENCRYPTION = "DataEncryption"


@dataclass(frozen=True, slots=True)
class OldCertificate:
    """The old certificate of a role being rotated, and when it expires (None: not in the inventory)."""

    thumbprint: str
    new_thumbprints: tuple[str, ...]
    not_after: datetime | None


def old_certificate(ctx: Context, role: str) -> OldCertificate | None:
    """The earliest-expiring certificate the configuration names as old for a role that is being rotated."""
    new = {r.thumbprint for r in ctx.references if r.role == role and r.generation is Generation.NEW and r.thumbprint}
    old = {
        r.thumbprint
        for r in ctx.references
        if r.role == role and r.generation is Generation.OLD and r.thumbprint and r.thumbprint not in new
    }
    if not old or not new:
        return None
    expiry = {o.thumbprint: o.certificate.not_after for o in ctx.snapshot.certificates() if o.thumbprint in old}
    known = sorted(expiry, key=lambda t: expiry[t])
    chosen = known[0] if known else sorted(old)[0]
    return OldCertificate(chosen, tuple(sorted(new)), expiry.get(chosen))


def _severity(ctx: Context, role: str, not_after: datetime | None) -> Severity:
    """Critical once the old certificate is inside its role's critical window."""
    if not_after is None:
        return Severity.WARNING
    days = (not_after - ctx.now).total_seconds() / 86400
    return Severity.CRITICAL if days <= ctx.settings.expiry_window(role).critical_days else Severity.WARNING


def _expires(old: OldCertificate) -> str:
    return f"expires on {old.not_after:%Y-%m-%d}" if old.not_after else "is not in the inventory (expiry unknown)"


def _axdb(ctx: Context) -> tuple[str, AxdbFacts] | None:
    return axdb_facts(ctx.snapshot)


def reencryption_not_enabled(ctx: Context) -> Iterable[Finding]:
    """The data encryption certificate is being rotated but the re-encryption flight or key is off."""
    found, old = _axdb(ctx), old_certificate(ctx, DATA_ENCRYPTION)
    if found is None or old is None or found[1].enabled or reencryption_complete(ctx.snapshot) is True:
        return
    target, facts = found
    missing = [
        text
        for on, text in (
            (facts.flight_enabled, "SYSFLIGHTING EnableEncryptedDataCrawlerRotationTask (ENABLED = 1)"),
            (facts.config_enabled, "SECURITYCONFIG EnableEncryptedDataRotation = True"),
        )
        if not on
    ]
    yield Finding(
        "reencryption-not-enabled",
        _severity(ctx, DATA_ENCRYPTION, old.not_after),
        f"the data encryption certificate is being rotated ({old.thumbprint} -> {', '.join(old.new_thumbprints)}) "
        f"but data re-encryption is off: {' and '.join(missing)} not set; data encrypted with the old certificate, "
        f"which {_expires(old)}, stays encrypted with it until the batch job runs",
        role=DATA_ENCRYPTION,
        thumbprint=old.thumbprint,
        source="sql",
        target=target,
        step="reencryption-enabled",
        remediation="enable-reencryption",
    )


def _job_note(facts: AxdbFacts) -> str:
    job, runs = facts.job, facts.runs
    if job is None:
        return "the batch job does not exist yet: restart the AOS nodes so they schedule it"
    text = f"batch job {job.status_name}"
    if runs.last_status is not None:
        ended = f", ended {runs.last_end:%Y-%m-%d %H:%M}Z" if runs.last_end else ""
        text += f"; last run {runs.last_status_name} (started {runs.last_start:%Y-%m-%d %H:%M}Z{ended})"
    else:
        text += "; it has not run yet"
    return text + f"; {runs.errors} of {runs.total} runs ended in error"


def _job_stalled(ctx: Context, facts: AxdbFacts) -> str:
    """Why the job looks stuck when no probe measures progress ('' when it does not)."""
    job, runs = facts.job, facts.runs
    stall = timedelta(hours=ctx.settings.sources.sql.stall_after_hours)
    if job is None:
        return "no progress probe is configured and"
    if job.status_name in ("Error", "Hold", "Canceled", "Cancelling"):
        return f"no progress probe is configured and the job is {job.status_name}:"
    if runs.last_status_name == "Error":
        return "no progress probe is configured and the last run ended in error:"
    last = runs.last_ended_at or job.original_start
    if last is not None and ctx.now - last >= stall:
        return f"no progress probe is configured and no run has ended for {(ctx.now - last).days} days:"
    return ""


def reencryption_stalled(ctx: Context) -> Iterable[Finding]:
    """Re-encryption is on but no probe has moved within the stall window (or the job looks stuck)."""
    found = _axdb(ctx)
    if found is None or not found[1].enabled or reencryption_complete(ctx.snapshot) is True:
        return
    target, facts = found
    old = old_certificate(ctx, DATA_ENCRYPTION)
    progress = reencryption_progress(ctx.snapshot)
    if progress is not None and progress.stalled:
        quiet = "; ".join(
            f"probe {e.probe}: {e.remaining:g} left, unchanged since "
            f"{(e.last_progress_at or e.history_since):%Y-%m-%d %H:%M}Z"
            for e in progress.stalled
        )
        reason = f"re-encryption has not progressed for {ctx.settings.sources.sql.stall_after_hours:g} hours ({quiet});"
    elif not facts.probes:
        reason = _job_stalled(ctx, facts)
        if not reason:
            return
    else:
        return
    yield Finding(
        "reencryption-stalled",
        _severity(ctx, DATA_ENCRYPTION, old.not_after if old else None),
        f"{reason} {_job_note(facts)}",
        role=DATA_ENCRYPTION,
        thumbprint=old.thumbprint if old else "",
        source="sql",
        target=target,
        step="reencryption-complete",
    )


def reencryption_eta_after_expiry(ctx: Context) -> Iterable[Finding]:
    """At the measured pace, re-encryption ends after the old data encryption certificate expires."""
    found, old, progress = _axdb(ctx), old_certificate(ctx, DATA_ENCRYPTION), reencryption_progress(ctx.snapshot)
    if found is None or old is None or old.not_after is None or progress is None or progress.eta is None:
        return
    if progress.eta <= old.not_after:
        return
    late = progress.eta - old.not_after
    yield Finding(
        "reencryption-eta-after-old-cert-expiry",
        Severity.CRITICAL,
        f"at the measured pace re-encryption finishes around {progress.eta:%Y-%m-%d} ({progress.remaining:g} left), "
        f"{late.days} days after the old data encryption certificate {old.thumbprint} expires on "
        f"{old.not_after:%Y-%m-%d}: data still encrypted with it then becomes unreadable; give the batch job "
        "more time each day",
        role=DATA_ENCRYPTION,
        thumbprint=old.thumbprint,
        source="sql",
        target=found[0],
        step="reencryption-complete",
    )


def credentials_on_old_cert(ctx: Context) -> Iterable[Finding]:
    """Credentials.json values encrypted to the old encipherment certificate and not to the new one."""
    generations = encipherment_generations(ctx.references)
    if Generation.NEW not in generations.values():
        return
    index = recipient_index(ctx.snapshot)
    expiries = {o.thumbprint: o.certificate.not_after for o in ctx.snapshot.certificates()}
    for target, facts in ctx.snapshot.facts("credentials", CredentialsFacts):
        encryptions = value_encryptions(facts, index, generations)
        on_new = {e.key for e in encryptions if e.generation == Generation.NEW}
        stale: dict[str, list[str]] = {}
        for item in encryptions:
            if item.generation == Generation.OLD and item.key not in on_new:
                stale.setdefault(item.thumbprint, []).append(item.key)
        for thumbprint, keys in stale.items():
            shown = ", ".join(dict.fromkeys(keys))
            yield Finding(
                "credentials-json-on-old-cert",
                _severity(ctx, ENCIPHERMENT_ROLE, expiries.get(thumbprint)),
                f"{target}: {len(set(keys))} of {len(facts.values)} values are encrypted only to the old encipherment "
                f"certificate {thumbprint} ({shown}); run Configure-CredentialsJson.ps1 -Action Rotate on an AOS node "
                "before that certificate is removed",
                role=ENCIPHERMENT_ROLE,
                thumbprint=thumbprint,
                source="credentials",
                target=target,
                step="credentials-rotated",
                remediation="credentials-json-rotate",
            )
