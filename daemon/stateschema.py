"""The state store's schema (versioned migrations) and the rows it gives back."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

DB_FILE = "certmon.db"

# Each entry moves the schema one version up; never edit a released entry, append one.
MIGRATIONS: tuple[str, ...] = (
    """
    CREATE TABLE cert_location (
        source      TEXT NOT NULL,
        node        TEXT NOT NULL,
        store       TEXT NOT NULL,
        thumbprint  TEXT NOT NULL,
        target      TEXT NOT NULL,
        subject_cn  TEXT NOT NULL DEFAULT '',
        not_after   REAL,
        first_seen  REAL NOT NULL,
        last_seen   REAL NOT NULL,
        last_absent REAL,
        present     INTEGER NOT NULL DEFAULT 1,
        PRIMARY KEY (source, node, store, thumbprint)
    );
    CREATE INDEX cert_location_thumbprint ON cert_location (thumbprint);
    CREATE INDEX cert_location_target ON cert_location (source, target);
    """,
    """
    CREATE TABLE audit (
        id          INTEGER PRIMARY KEY AUTOINCREMENT,
        at          REAL NOT NULL,
        actor       TEXT NOT NULL,
        host        TEXT NOT NULL,
        remediation TEXT NOT NULL,
        target      TEXT NOT NULL,
        mode        TEXT NOT NULL,
        outcome     TEXT NOT NULL,
        detail      TEXT NOT NULL DEFAULT '{}'
    );
    CREATE TABLE progress_sample (
        probe       TEXT NOT NULL,
        at          REAL NOT NULL,
        remaining   REAL NOT NULL,
        total       REAL,
        PRIMARY KEY (probe, at)
    );
    """,
)


@dataclass(frozen=True, slots=True)
class LocationHistory:
    """Where a certificate has been seen, and since when it is gone."""

    source: str
    target: str
    node: str
    store: str
    thumbprint: str
    subject_cn: str
    not_after: float | None
    first_seen: datetime
    last_seen: datetime
    last_absent: datetime | None
    present: bool


@dataclass(frozen=True, slots=True)
class LocationChanges:
    """What one collection of a target changed in the history."""

    appeared: tuple[tuple[str, str, str], ...]
    disappeared: tuple[tuple[str, str, str], ...]


def _ts(moment: datetime) -> float:
    return moment.timestamp()


def _dt(value: float | None) -> datetime | None:
    return None if value is None else datetime.fromtimestamp(value, UTC)


LOCATION_COLUMNS = (
    "source, target, node, store, thumbprint, subject_cn, not_after, first_seen, last_seen, last_absent, present"
)


def history_row(r: Sequence[Any]) -> LocationHistory:
    return LocationHistory(
        source=r[0],
        target=r[1],
        node=r[2],
        store=r[3],
        thumbprint=r[4],
        subject_cn=r[5],
        not_after=r[6],
        first_seen=_dt(r[7]) or datetime.min.replace(tzinfo=UTC),
        last_seen=_dt(r[8]) or datetime.min.replace(tzinfo=UTC),
        last_absent=_dt(r[9]),
        present=bool(r[10]),
    )
