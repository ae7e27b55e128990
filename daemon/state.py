"""The state store: SQLite (WAL) history of certificate locations, the audit log, progress samples."""

from __future__ import annotations

import contextlib
import json
import os
import sqlite3
import threading
from collections import deque
from collections.abc import Iterable, Iterator, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from collectors.model import CertObservation
from daemon.dbheader import HeaderReader
from daemon.statefaults import (
    StateError,
    StateFault,
    StoreHealth,
    StoreStatus,
    classify,
    log,
    quarantine,
    reimport_audit,
)
from daemon.staterecovery import RecoveryMixin
from daemon.stateschema import (
    DB_FILE,
    LOCATION_COLUMNS,
    MIGRATIONS,
    LocationChanges,
    LocationHistory,
    _dt,
    _ts,
    history_row,
)

__all__ = ["DB_FILE", "MIGRATIONS", "LocationChanges", "LocationHistory", "StateError", "StateStore"]

#: progress samples kept in memory while the store cannot take them (a week of 1-minute samples of a few probes)
PENDING_PROGRESS_LIMIT = 20_000


class StateStore(RecoveryMixin):
    """One SQLite file in WAL mode, shared by the daemon's threads behind a lock.

    A store that cannot be written (full or read-only disk) is a health state, not a crash: what
    could not be recorded waits in memory (the latest collection of each target, progress
    samples) and is written when the store works again. A corrupt file found at start is moved
    aside and refused (exit 2); one found while running is moved aside and replaced by a new
    store, which gets the audit records back from `audit.jsonl`. A file deleted or replaced
    while running is rewritten from the connection that still has it open.
    """

    def __init__(self, data_dir: Path, *, audit_file: Path | None = None) -> None:
        self.path = data_dir / DB_FILE
        self.health = StoreHealth()
        #: the JSON-lines audit log a new store re-imports audit records from
        self.audit_file = audit_file
        #: set when a new store replaced a lost or corrupt one: the owner records current locations again
        self.recreated = False
        self._lock = threading.RLock()
        self._db: sqlite3.Connection | None = None
        self._identity: tuple[int, int] | None = None
        self._header = HeaderReader(self.path)
        self._pending_locations: dict[tuple[str, str], tuple[dict[tuple[str, str, str], CertObservation], float]] = {}
        self._pending_progress: deque[tuple[str, float, float, float | None]] = deque(maxlen=PENDING_PROGRESS_LIMIT)
        try:
            data_dir.mkdir(parents=True, exist_ok=True)
        except OSError as err:
            raise StateError(f"{self.path}: cannot open the state store: {err}", classify(err)) from err
        fresh = not self.path.exists()
        try:
            db = self._open(check=True)
            if fresh and audit_file is not None and audit_file.exists():
                # A new store next to an existing audit log (the old store was lost): take the records back.
                restored = reimport_audit(db, audit_file)
                log.warning(
                    "%s: new state store; %d audit records re-imported from %s", self.path, restored, audit_file
                )
        except StateError as err:
            if err.fault in (StateFault.CORRUPT, StateFault.SCHEMA):
                raise
            # A read-only or full disk: collect in memory, say so, and try again at every write.
            self.health.failed("open", err)

    # -- connection --------------------------------------------------------------------------

    def _open(self, *, check: bool) -> sqlite3.Connection:
        existed = self.path.exists() and self.path.stat().st_size > 0
        db: sqlite3.Connection | None = None
        try:
            db = sqlite3.connect(self.path, check_same_thread=False, timeout=30, isolation_level=None)
            db.execute("PRAGMA journal_mode=WAL")
            db.execute("PRAGMA synchronous=NORMAL")
            db.execute("PRAGMA foreign_keys=ON")
            if existed and check:
                verdict = str(db.execute("PRAGMA quick_check").fetchone()[0])
                if verdict != "ok":
                    raise sqlite3.DatabaseError(f"database disk image is malformed ({verdict[:200]})")
        except sqlite3.Error as err:
            if db is not None:
                with contextlib.suppress(sqlite3.Error):
                    db.close()
            if classify(err) is StateFault.CORRUPT and existed:
                raise self._corrupt_at_start(err) from err
            raise StateError(f"{self.path}: cannot open the state store: {err}", classify(err)) from err
        self._db = db
        self._identity = self._stat()
        self._migrate(db)
        return db

    def _corrupt_at_start(self, err: sqlite3.Error) -> StateError:
        try:
            kept = quarantine(self.path, datetime.now(UTC))
        except OSError as move_err:
            return StateError(
                f"{self.path}: the state store is corrupt ({err}) and could not be moved aside ({move_err}); "
                "move it away to start with an empty store (audit.jsonl keeps the audit records)",
                StateFault.CORRUPT,
            )
        return StateError(
            f"{self.path}: the state store is corrupt ({err}); it is kept as {kept.name} and the next start "
            "begins an empty store (audit.jsonl keeps the audit records)",
            StateFault.CORRUPT,
        )

    def _stat(self) -> tuple[int, int] | None:
        try:
            st = os.stat(self.path)
        except OSError:
            return None
        return (st.st_dev, st.st_ino)

    def _conn(self) -> sqlite3.Connection:
        return self._db if self._db is not None else self._open(check=False)

    @contextlib.contextmanager
    def _guard(self, operation: str, *, write: bool) -> Iterator[sqlite3.Connection]:
        """Run one operation under the lock; a failure becomes a StateError of its kind and a health state."""
        with self._lock:
            try:
                db = self._conn()
                if write:
                    db.execute("BEGIN IMMEDIATE")
                yield db
                if write:
                    db.execute("COMMIT")
            except (sqlite3.Error, StateError) as err:
                if self._db is not None and self._db.in_transaction:
                    # SQLite has often rolled back already (a full disk): never let this hide the cause.
                    with contextlib.suppress(sqlite3.Error):
                        self._db.execute("ROLLBACK")
                failure = (
                    err
                    if isinstance(err, StateError)
                    else StateError(f"{self.path}: {operation}: {err}", classify(err))
                )
                self.health.failed(operation, failure)
                if failure.fault is StateFault.CORRUPT:
                    self._replace_corrupt(failure)
                raise failure from err
        if write:
            self.health.succeeded()

    @property
    def schema_version(self) -> int:
        """The schema version recorded in the database."""
        with self._guard("read", write=False) as db:
            return int(db.execute("PRAGMA user_version").fetchone()[0])

    def _migrate(self, db: sqlite3.Connection) -> None:
        current = int(db.execute("PRAGMA user_version").fetchone()[0])
        if current > len(MIGRATIONS):
            raise StateError(
                f"{self.path}: schema version {current} is newer than this certmon "
                f"({len(MIGRATIONS)}); upgrade certmon or use another data_dir",
                StateFault.SCHEMA,
            )
        for version in range(current, len(MIGRATIONS)):
            try:
                db.execute("BEGIN IMMEDIATE")
                for statement in MIGRATIONS[version].split(";"):
                    if statement.strip():
                        db.execute(statement)
                db.execute(f"PRAGMA user_version = {version + 1}")
                db.execute("COMMIT")
            except sqlite3.Error as err:
                if db.in_transaction:
                    with contextlib.suppress(sqlite3.Error):
                        db.execute("ROLLBACK")
                raise StateError(
                    f"{self.path}: migration to version {version + 1} failed: {err}", classify(err)
                ) from err

    # -- faults while running ----------------------------------------------------------------

    def status(self) -> StoreStatus:
        """The store's health, with what waits in memory."""
        return self.health.status(len(self._pending_locations) + len(self._pending_progress))

    # -- locations ---------------------------------------------------------------------------

    def record_locations(
        self, source: str, target: str, observed: Iterable[CertObservation], now: datetime
    ) -> LocationChanges:
        """Record a complete collection of one target: present now, and gone since last time.

        When the store cannot take it, the collection waits in memory (the latest one of each
        target) and is written at the next write that succeeds; then nothing changed is reported.
        """
        rows: dict[tuple[str, str, str], CertObservation] = {}
        for obs in observed:
            rows[(obs.node, obs.store, obs.thumbprint)] = obs
        with self._lock:
            self._pending_locations.pop((source, target), None)
            try:
                with contextlib.suppress(StateError):
                    self._flush()
                return self._record(source, target, rows, _ts(now))
            except StateError:
                self._pending_locations[(source, target)] = (rows, _ts(now))
                return LocationChanges((), ())

    def _flush(self) -> None:
        while self._pending_locations:
            (source, target), (rows, at) = next(iter(self._pending_locations.items()))
            self._record(source, target, rows, at)
            del self._pending_locations[(source, target)]
        if self._pending_progress:
            with self._guard("progress", write=True) as db:
                db.executemany(
                    "INSERT OR REPLACE INTO progress_sample (probe, at, remaining, total) VALUES (?, ?, ?, ?)",
                    list(self._pending_progress),
                )
            self._pending_progress.clear()

    def _record(
        self, source: str, target: str, rows: dict[tuple[str, str, str], CertObservation], at: float
    ) -> LocationChanges:
        with self._guard("record-locations", write=True) as db:
            before = {
                (node, store, thumbprint): bool(present)
                for node, store, thumbprint, present in db.execute(
                    "SELECT node, store, thumbprint, present FROM cert_location WHERE source = ? AND target = ?",
                    (source, target),
                )
            }
            db.executemany(
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
            db.executemany(
                "UPDATE cert_location SET present = 0, last_absent = ? "
                "WHERE source = ? AND node = ? AND store = ? AND thumbprint = ?",
                [(at, source, *key) for key in gone],
            )
        appeared = tuple(key for key in rows if not before.get(key, False))
        return LocationChanges(appeared=appeared, disappeared=tuple(gone))

    def locations(self, thumbprints: Sequence[str] | None = None) -> list[LocationHistory]:
        """The whole location history, or that of some thumbprints."""
        query = f"SELECT {LOCATION_COLUMNS} FROM cert_location"  # noqa: S608 - constant column list
        args: tuple[Any, ...] = ()
        if thumbprints is not None:
            query += f" WHERE thumbprint IN ({','.join('?' * len(thumbprints))})"
            args = tuple(thumbprints)
        with self._guard("read", write=False) as db:
            rows = db.execute(query, args).fetchall()
        return [history_row(r) for r in rows]

    def removals(self, thumbprint: str, sources: Sequence[str]) -> list[LocationHistory]:
        """Where a certificate was seen by one of `sources` and is gone now (the index on thumbprint)."""
        with self._guard("read", write=False) as db:
            rows = db.execute(
                f"SELECT {LOCATION_COLUMNS} FROM cert_location WHERE thumbprint = ? AND present = 0"  # noqa: S608
                f" AND source IN ({','.join('?' * len(sources))}) ORDER BY node, source, store",
                (thumbprint, *sources),
            ).fetchall()
        return [history_row(r) for r in rows]

    # -- audit and progress ------------------------------------------------------------------

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
        """Append one audit entry; returns its id (audit.jsonl is the durable copy when this fails)."""
        with self._guard("audit", write=True) as db:
            cursor = db.execute(
                "INSERT INTO audit (at, actor, host, remediation, target, mode, outcome, detail)"
                " VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                (_ts(at), actor, host, remediation, target, mode, outcome, json.dumps(detail, sort_keys=True)),
            )
            return int(cursor.lastrowid or 0)

    def audit_entries(self, limit: int = 100) -> list[dict[str, Any]]:
        """The newest audit entries, newest first."""
        with self._guard("read", write=False) as db:
            rows = db.execute(
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
        """Record one re-encryption progress sample (kept in memory while the store cannot take it)."""
        sample = (probe, _ts(at), remaining, total)
        with self._lock:
            try:
                with self._guard("progress", write=True) as db:
                    db.execute(
                        "INSERT OR REPLACE INTO progress_sample (probe, at, remaining, total) VALUES (?, ?, ?, ?)",
                        sample,
                    )
            except StateError:
                self._pending_progress.append(sample)

    def progress(self, probe: str, since: datetime | None = None) -> list[tuple[datetime, float, float | None]]:
        """Progress samples of a probe, oldest first (with those waiting in memory)."""
        low = _ts(since) if since else 0.0
        with self._lock:
            waiting = [(at, rem, tot) for p, at, rem, tot in self._pending_progress if p == probe and at >= low]
            try:
                with self._guard("read", write=False) as db:
                    rows = db.execute(
                        "SELECT at, remaining, total FROM progress_sample WHERE probe = ? AND at >= ? ORDER BY at",
                        (probe, low),
                    ).fetchall()
            except StateError:
                rows = []
        merged = {r[0]: r for r in rows} | {r[0]: r for r in waiting}
        return [(datetime.fromtimestamp(at, UTC), r[1], r[2]) for at, r in sorted(merged.items())]

    def transaction(self, operation: str) -> contextlib.AbstractContextManager[sqlite3.Connection]:
        """One write transaction for maintenance (retention), with the store's fault handling."""
        return self._guard(operation, write=True)

    def integrity_ok(self) -> bool:
        """True when SQLite's integrity check passes."""
        with self._guard("read", write=False) as db:
            return bool(db.execute("PRAGMA integrity_check").fetchone()[0] == "ok")

    def close(self) -> None:
        """Write what waits in memory if possible, then close the database."""
        with self._lock:
            with contextlib.suppress(StateError):
                self._flush()
            if self._db is not None:
                with contextlib.suppress(sqlite3.Error):
                    self._db.close()
                self._db = None
            self._header.close()
