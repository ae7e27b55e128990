"""The state store: SQLite (WAL) history of certificate locations, the audit log, progress samples."""

from __future__ import annotations

import json
import sqlite3
import threading
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from collectors.errors import CertmonError
from collectors.model import CertObservation

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


class StateError(CertmonError):
    """The state store cannot be opened or written."""


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


class StateStore:
    """One SQLite file in WAL mode, shared by the daemon's threads behind a lock."""

    def __init__(self, data_dir: Path) -> None:
        self.path = data_dir / DB_FILE
        try:
            data_dir.mkdir(parents=True, exist_ok=True)
            self._db = sqlite3.connect(self.path, check_same_thread=False, timeout=30, isolation_level=None)
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=NORMAL")
            self._db.execute("PRAGMA foreign_keys=ON")
        except (OSError, sqlite3.Error) as err:
            raise StateError(f"{self.path}: cannot open the state store: {err}") from err
        self._lock = threading.Lock()
        self._migrate()

    @property
    def schema_version(self) -> int:
        """The schema version recorded in the database."""
        return int(self._db.execute("PRAGMA user_version").fetchone()[0])

    def _migrate(self) -> None:
        with self._lock:
            current = self.schema_version
            if current > len(MIGRATIONS):
                raise StateError(
                    f"{self.path}: schema version {current} is newer than this certmon "
                    f"({len(MIGRATIONS)}); upgrade certmon or use another data_dir"
                )
            for version in range(current, len(MIGRATIONS)):
                try:
                    self._db.execute("BEGIN IMMEDIATE")
                    for statement in MIGRATIONS[version].split(";"):
                        if statement.strip():
                            self._db.execute(statement)
                    self._db.execute(f"PRAGMA user_version = {version + 1}")
                    self._db.execute("COMMIT")
                except sqlite3.Error as err:
                    self._db.execute("ROLLBACK")
                    raise StateError(f"{self.path}: migration to version {version + 1} failed: {err}") from err

    def record_locations(
        self, source: str, target: str, observed: Iterable[CertObservation], now: datetime
    ) -> LocationChanges:
        """Record a complete collection of one target: present now, and gone since last time."""
        at = _ts(now)
        rows = {}
        for obs in observed:
            rows[(obs.node, obs.store, obs.thumbprint)] = obs
        with self._lock:
            try:
                self._db.execute("BEGIN IMMEDIATE")
                before = {
                    (node, store, thumbprint): bool(present)
                    for node, store, thumbprint, present in self._db.execute(
                        "SELECT node, store, thumbprint, present FROM cert_location WHERE source = ? AND target = ?",
                        (source, target),
                    )
                }
                self._db.executemany(
                    "INSERT INTO cert_location (source, node, store, thumbprint, target, subject_cn,"
                    " not_after, first_seen, last_seen, present) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, 1)"
                    " ON CONFLICT (source, node, store, thumbprint) DO UPDATE SET"
                    " last_seen = excluded.last_seen, present = 1, target = excluded.target",
                    [
                        (
                            source,
                            node,
                            store,
                            thumbprint,
                            target,
                            obs.certificate.subject_cn,
                            obs.certificate.not_after_ts,
                            at,
                            at,
                        )
                        for (node, store, thumbprint), obs in rows.items()
                    ],
                )
                gone = [key for key, present in before.items() if present and key not in rows]
                self._db.executemany(
                    "UPDATE cert_location SET present = 0, last_absent = ? "
                    "WHERE source = ? AND node = ? AND store = ? AND thumbprint = ?",
                    [(at, source, *key) for key in gone],
                )
                self._db.execute("COMMIT")
            except sqlite3.Error as err:
                self._db.execute("ROLLBACK")
                raise StateError(f"{self.path}: cannot record {source}/{target}: {err}") from err
        appeared = tuple(key for key in rows if not before.get(key, False))
        return LocationChanges(appeared=appeared, disappeared=tuple(gone))

    def locations(self, thumbprints: Sequence[str] | None = None) -> list[LocationHistory]:
        """The whole location history, or that of some thumbprints."""
        query = (
            "SELECT source, target, node, store, thumbprint, subject_cn, not_after, first_seen,"
            " last_seen, last_absent, present FROM cert_location"
        )
        args: tuple[Any, ...] = ()
        if thumbprints is not None:
            query += f" WHERE thumbprint IN ({','.join('?' * len(thumbprints))})"
            args = tuple(thumbprints)
        with self._lock:
            rows = self._db.execute(query, args).fetchall()
        return [
            LocationHistory(
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
            for r in rows
        ]

    def add_audit(
        self,
        *,
        at: datetime,
        actor: str,
        host: str,
        remediation: str,
        target: str,
        mode: str,
        outcome: str,
        detail: dict[str, Any],
    ) -> int:
        """Append one audit entry; returns its id."""
        with self._lock:
            cursor = self._db.execute(
                "INSERT INTO audit (at, actor, host, remediation, target, mode, outcome, detail)"
                " VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                (_ts(at), actor, host, remediation, target, mode, outcome, json.dumps(detail, sort_keys=True)),
            )
            return int(cursor.lastrowid or 0)

    def audit_entries(self, limit: int = 100) -> list[dict[str, Any]]:
        """The newest audit entries, newest first."""
        with self._lock:
            rows = self._db.execute(
                "SELECT id, at, actor, host, remediation, target, mode, outcome, detail FROM audit"
                " ORDER BY id DESC LIMIT ?",
                (limit,),
            ).fetchall()
        return [
            {
                "id": r[0],
                "at": _dt(r[1]),
                "actor": r[2],
                "host": r[3],
                "remediation": r[4],
                "target": r[5],
                "mode": r[6],
                "outcome": r[7],
                "detail": json.loads(r[8]),
            }
            for r in rows
        ]

    def add_progress(self, probe: str, at: datetime, remaining: float, total: float | None) -> None:
        """Record one re-encryption progress sample."""
        with self._lock:
            self._db.execute(
                "INSERT OR REPLACE INTO progress_sample (probe, at, remaining, total) VALUES (?, ?, ?, ?)",
                (probe, _ts(at), remaining, total),
            )

    def progress(self, probe: str, since: datetime | None = None) -> list[tuple[datetime, float, float | None]]:
        """Progress samples of a probe, oldest first."""
        with self._lock:
            rows = self._db.execute(
                "SELECT at, remaining, total FROM progress_sample WHERE probe = ? AND at >= ? ORDER BY at",
                (probe, _ts(since) if since else 0.0),
            ).fetchall()
        return [(datetime.fromtimestamp(r[0], UTC), r[1], r[2]) for r in rows]

    def integrity_ok(self) -> bool:
        """True when SQLite's integrity check passes."""
        with self._lock:
            return bool(self._db.execute("PRAGMA integrity_check").fetchone()[0] == "ok")

    def close(self) -> None:
        """Close the database."""
        with self._lock:
            self._db.close()
