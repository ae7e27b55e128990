"""Retention of the state store: old audit records, location history and progress samples are pruned.

Safe defaults keep what the rules need:

* location history: a location not seen for `locations_days` goes, unless a configuration still
  references the certificate (a removed previous-generation certificate stays evidence for
  `data-encryption-old-cert-removed-early` and `old-cert-removed-early` for as long as anything
  names it);
* progress samples: never fewer days than the SQL source's rate window and stall threshold
  need for its ETA and stall verdicts;
* audit records: `audit_days` in the store; `audit.jsonl` is the durable copy and is not pruned
  here (rotate it with the operating system's log rotation if it must be bounded).

Each run deletes in batches, so the store's lock is never held for long.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta

from pydantic import Field

from daemon.sources.base import Strict
from daemon.state import StateStore
from daemon.statefaults import StateError

log = logging.getLogger("certmon.state")

BATCH_ROWS = 20_000
MAX_BATCHES = 50


class RetentionSettings(Strict):
    """How long the state store keeps what it records."""

    #: a location not seen for this long is forgotten (unless a configuration references the certificate)
    locations_days: float = Field(400.0, gt=0)
    #: re-encryption progress samples; never less than the SQL source's rate window and stall threshold
    progress_days: float = Field(30.0, gt=0)
    #: audit records in the state store (audit.jsonl keeps every record)
    audit_days: float = Field(730.0, gt=0)
    #: how often retention runs
    interval_hours: float = Field(6.0, gt=0)


@dataclass(frozen=True)
class Pruned:
    """Rows one retention run deleted."""

    locations: int
    progress: int
    audit: int


def progress_floor(rate_window_days: float, stall_after_hours: float) -> timedelta:
    """The progress history the ETA and stall verdicts need."""
    return max(timedelta(days=rate_window_days), timedelta(hours=stall_after_hours))


def prune(
    store: StateStore,
    settings: RetentionSettings,
    now: datetime,
    keep_thumbprints: Iterable[str],
    progress_needed: timedelta = timedelta(0),
) -> Pruned:
    """Delete what retention allows, keeping locations of referenced certificates; raises StateError."""
    keep = sorted(set(keep_thumbprints))
    location_cutoff = (now - timedelta(days=settings.locations_days)).timestamp()
    progress_cutoff = (now - max(timedelta(days=settings.progress_days), progress_needed)).timestamp()
    audit_cutoff = (now - timedelta(days=settings.audit_days)).timestamp()
    with store.transaction("retention") as db:
        db.execute("CREATE TEMP TABLE IF NOT EXISTS retention_keep (thumbprint TEXT PRIMARY KEY)")
        db.execute("DELETE FROM temp.retention_keep")
        db.executemany("INSERT OR IGNORE INTO temp.retention_keep VALUES (?)", [(t,) for t in keep])
    locations = _batches(
        store,
        "DELETE FROM cert_location WHERE rowid IN (SELECT rowid FROM cert_location WHERE last_seen < ?"
        " AND thumbprint NOT IN (SELECT thumbprint FROM temp.retention_keep) LIMIT ?)",
        location_cutoff,
    )
    progress = _batches(
        store,
        "DELETE FROM progress_sample WHERE rowid IN (SELECT rowid FROM progress_sample WHERE at < ? LIMIT ?)",
        progress_cutoff,
    )
    audit = _batches(store, "DELETE FROM audit WHERE id IN (SELECT id FROM audit WHERE at < ? LIMIT ?)", audit_cutoff)
    return Pruned(locations, progress, audit)


def _batches(store: StateStore, statement: str, cutoff: float) -> int:
    deleted = 0
    for _ in range(MAX_BATCHES):
        with store.transaction("retention") as db:
            count = db.execute(statement, (cutoff, BATCH_ROWS)).rowcount
        deleted += count
        if count < BATCH_ROWS:
            break
    return deleted


class RetentionSchedule:
    """Runs retention at most every `interval_hours` (monotonic time: a clock step does not skip or repeat it)."""

    def __init__(self, settings: RetentionSettings) -> None:
        self.settings = settings
        self._monotonic = time.monotonic
        self._last: float | None = None

    def due(self) -> bool:
        """True when retention has not run for its interval."""
        now = self._monotonic()
        return self._last is None or now - self._last >= self.settings.interval_hours * 3600

    def run(self, store: StateStore, now: datetime, keep: Iterable[str], progress_needed: timedelta) -> Pruned | None:
        """Prune when due; a failing store is the store's health, not a crash."""
        if not self.due():
            return None
        self._last = self._monotonic()
        try:
            pruned = prune(store, self.settings, now, keep, progress_needed)
        except StateError as err:
            log.warning("retention skipped: %s", err)
            return None
        if pruned.locations or pruned.progress or pruned.audit:
            log.info(
                "retention: %d locations, %d progress samples, %d audit records removed",
                pruned.locations,
                pruned.progress,
                pruned.audit,
            )
        return pruned
