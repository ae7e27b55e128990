"""Where data re-encryption stands, as facts every rule, the rotation tracker and the remediations share.

`reencryption_complete(snapshot)` is the one answer to "has all data been re-encrypted with the
new data encryption certificate?": True, False, or None when certmon cannot tell (AXDB not
collected, no progress probe configured, or a probe failing while the others show nothing left).
The batch job's runs alone never prove completion: the job keeps its recurrence after the
last row is done. The `*_evidence` functions give the same answers with their reasons, for the
rotation checklist.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from collectors.answers import Evidence
from collectors.configtemplate import ConfigTemplate
from collectors.model import Generation, Snapshot
from collectors.sql.axdb import AxdbFacts
from collectors.sql.collector import SOURCE
from collectors.sql.progress import ProgressEstimate


def axdb_facts(snapshot: Snapshot) -> tuple[str, AxdbFacts] | None:
    """(target, facts) of the business database's last good collection, or None."""
    found = snapshot.facts(SOURCE, AxdbFacts)
    return found[0] if found else None


NOT_READ = "AXDB has not been read (sources.sql.axdb)"


def reencryption_enabled_evidence(snapshot: Snapshot) -> Evidence:
    """Are the flight EnableEncryptedDataCrawlerRotationTask and the key EnableEncryptedDataRotation set?"""
    found = axdb_facts(snapshot)
    if found is None:
        return Evidence(None, NOT_READ)
    facts = found[1]
    state = (
        f"flight EnableEncryptedDataCrawlerRotationTask {'on' if facts.flight_enabled else 'off'}, "
        f"key EnableEncryptedDataRotation {'on' if facts.config_enabled else 'off'}"
    )
    return Evidence(facts.enabled, f"{state} in {found[0]}")


def reencryption_enabled(snapshot: Snapshot) -> bool | None:
    """Both the flight and the config key are set; None when AXDB was never read."""
    return reencryption_enabled_evidence(snapshot).value


def last_full_backup(snapshot: Snapshot) -> datetime | None:
    """When the newest full AXDB backup finished (msdb.dbo.backupset), or None when unknown."""
    found = axdb_facts(snapshot)
    return None if found is None else found[1].last_full_backup


def axdb_backup_evidence(snapshot: Snapshot, after: datetime | None) -> Evidence:
    """Did a full AXDB backup finish after `after` (when the new certificates were generated)?"""
    found = axdb_facts(snapshot)
    if found is None:
        return Evidence(None, NOT_READ)
    facts = found[1]
    if facts.last_full_backup is None:
        reason = facts.backup_error or "msdb.dbo.backupset lists no full backup of the database"
        return Evidence(None if facts.backup_error else False, reason)
    finished = f"the newest full backup finished {facts.last_full_backup:%Y-%m-%d %H:%M}Z"
    if after is None:
        return Evidence(None, f"{finished}; when the new certificates were generated is unknown")
    return Evidence(facts.last_full_backup >= after, f"{finished}, certificates generated {after:%Y-%m-%d %H:%M}Z")


def reencryption_complete_evidence(snapshot: Snapshot) -> Evidence:
    """Has every progress probe reached zero? Unknown without probes, or when one fails and none shows data left."""
    found = axdb_facts(snapshot)
    if found is None:
        return Evidence(None, NOT_READ)
    facts = found[1]
    if not facts.probes:
        return Evidence(None, "no progress probe is configured (sources.sql.probes); the batch job cannot tell")
    estimates = facts.estimates()
    left = [e for e in estimates if not e.complete]
    if left:
        shown = ", ".join(f"{e.probe} {e.remaining:g}" for e in left)
        return Evidence(False, f"still encrypted with the old certificate: {shown}")
    failing = [p for p in facts.probes if p.estimate is None]
    if failing:
        return Evidence(None, f"probe {failing[0].name} cannot be read: {failing[0].error}")
    return Evidence(True, f"every progress probe reads zero ({', '.join(e.probe for e in estimates)})")


def reencryption_complete(snapshot: Snapshot) -> bool | None:
    """True when every progress probe reads zero remaining; False when one reads more; else None."""
    return reencryption_complete_evidence(snapshot).value


@dataclass(frozen=True, slots=True)
class ReencryptionProgress:
    """The probes together: what remains, the latest ETA, which probes are stalled."""

    remaining: float
    eta: datetime | None
    #: True when some probe with data left has no measurable pace yet (ETA unknown)
    eta_unknown: bool
    stalled: tuple[ProgressEstimate, ...]
    estimates: tuple[ProgressEstimate, ...]


def reencryption_progress(snapshot: Snapshot) -> ReencryptionProgress | None:
    """Progress over every readable probe, or None when no probe could be read."""
    found = axdb_facts(snapshot)
    if found is None:
        return None
    estimates = tuple(found[1].estimates())
    if not estimates:
        return None
    pending = [e for e in estimates if not e.complete]
    etas = [e.eta for e in pending if e.eta is not None]
    return ReencryptionProgress(
        remaining=sum(e.remaining for e in estimates),
        eta=max(etas) if etas else None,
        eta_unknown=len(etas) < len(pending),
        stalled=tuple(e for e in pending if e.stalled),
        estimates=estimates,
    )


@dataclass(frozen=True, slots=True)
class Rotation:
    """Thumbprints of a role in the old and the new ConfigTemplate.xml."""

    old: tuple[str, ...]
    new: tuple[str, ...]


def template_rotation(snapshot: Snapshot, role: str) -> Rotation | None:
    """The role's old and new thumbprints when the ConfigTemplate pair rotates it, else None."""
    templates = snapshot.facts("configtemplate", ConfigTemplate)
    new = {tp for _, t in templates if t.generation is Generation.NEW for tp in t.thumbprints(role)}
    old = {tp for _, t in templates if t.generation is Generation.OLD for tp in t.thumbprints(role)} - new
    return Rotation(tuple(sorted(old)), tuple(sorted(new))) if old and new else None
