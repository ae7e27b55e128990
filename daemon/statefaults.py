"""What went wrong with the state store, in the operator's words, and whether it is working now.

SQLite reports a full disk, a read-only folder, a corrupt file or a vanished one through
error codes; each becomes a `StateError` of one kind from a closed set. `StoreHealth` turns the
outcomes of the store's operations into a health state (up or down, why, since when, errors
per operation) that the exporter, /healthz and the evaluator show, logging once when the store
starts failing and once when it recovers.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import shutil
import sqlite3
import threading
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum
from pathlib import Path
from typing import Any

from collectors.errors import CertmonError

log = logging.getLogger("certmon.state")

#: the `certmon` exit code for a store that cannot be used at start (as for a configuration error)
EXIT_STATE = 2


class StateFault(StrEnum):
    """Why the state store failed (a closed set, used as a metric label)."""

    FULL = "disk-full"
    READ_ONLY = "read-only"
    CORRUPT = "corrupt"
    MISSING = "missing"
    BUSY = "busy"
    SCHEMA = "schema"
    IO = "io-error"


class StateError(CertmonError):
    """The state store cannot be opened or written."""

    exit_code = EXIT_STATE

    def __init__(self, message: str, fault: StateFault = StateFault.IO) -> None:
        super().__init__(message)
        self.fault = fault


_CODES = {
    "SQLITE_FULL": StateFault.FULL,
    "SQLITE_READONLY": StateFault.READ_ONLY,
    "SQLITE_CORRUPT": StateFault.CORRUPT,
    "SQLITE_NOTADB": StateFault.CORRUPT,
    "SQLITE_CANTOPEN": StateFault.MISSING,
    "SQLITE_BUSY": StateFault.BUSY,
    "SQLITE_LOCKED": StateFault.BUSY,
}


def classify(err: BaseException) -> StateFault:
    """The kind of a SQLite or OS error."""
    if isinstance(err, StateError):
        return err.fault
    if isinstance(err, sqlite3.Error):
        name = getattr(err, "sqlite_errorname", "") or ""
        for prefix, fault in _CODES.items():
            if name.startswith(prefix):
                return fault
        text = str(err).lower()
        if "malformed" in text or "not a database" in text:
            return StateFault.CORRUPT
        if "disk is full" in text:
            return StateFault.FULL
        if "readonly" in text or "read-only" in text:
            return StateFault.READ_ONLY
        return StateFault.IO
    if isinstance(err, OSError):
        import errno

        return {
            errno.ENOSPC: StateFault.FULL,
            errno.EROFS: StateFault.READ_ONLY,
            errno.EACCES: StateFault.READ_ONLY,
            errno.EPERM: StateFault.READ_ONLY,
            errno.ENOENT: StateFault.MISSING,
        }.get(err.errno or 0, StateFault.IO)
    return StateFault.IO


def quarantine(path: Path, now: datetime, *, copy: bool = False) -> Path:
    """Move (or copy) a corrupt database and its WAL and shared-memory files aside; returns the kept copy's path.

    Copy while a connection still has the file open: closing it may write pages back into it.
    """
    stamp = now.astimezone(UTC).strftime("%Y%m%dT%H%M%SZ")
    kept = path.with_name(f"{path.name}.corrupt-{stamp}")
    counter = 1
    while kept.exists():
        kept = path.with_name(f"{path.name}.corrupt-{stamp}-{counter}")
        counter += 1
    move = shutil.copyfile if copy else os.replace
    move(path, kept)
    for suffix in ("-wal", "-shm"):
        companion = path.with_name(path.name + suffix)
        if companion.exists():
            move(companion, kept.with_name(kept.name + suffix))
    return kept


@dataclass(frozen=True, slots=True)
class StoreStatus:
    """The state store's health at one moment."""

    up: bool
    fault: StateFault | None
    message: str
    since: datetime | None
    errors_total: dict[tuple[str, str], int]
    #: location collections and progress samples kept in memory until the store takes them
    pending: int = 0


class StoreHealth:
    """Up or down, why and since when, and error counts per (operation, fault)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._fault: StateFault | None = None
        self._message = ""
        self._since: datetime | None = None
        self._errors: dict[tuple[str, str], int] = {}

    @property
    def up(self) -> bool:
        """True while the last write succeeded."""
        return self._fault is None

    def failed(self, operation: str, err: StateError) -> None:
        """Count a failed operation; the store is down until a write succeeds again."""
        with self._lock:
            key = (operation, str(err.fault))
            self._errors[key] = self._errors.get(key, 0) + 1
            changed = self._fault is not err.fault
            if self._fault is None:
                self._since = datetime.now(UTC)
            self._fault, self._message = err.fault, str(err)
        if changed:
            log.error("state store failing (%s), collection continues in memory: %s", err.fault, err)

    def succeeded(self) -> None:
        """A write went through: the store is up."""
        if self._fault is None:
            return
        with self._lock:
            was, self._fault, self._message, self._since = self._fault, None, "", None
        log.warning("state store recovered (was %s)", was)

    def status(self, pending: int = 0) -> StoreStatus:
        """A copy of the current state."""
        with self._lock:
            return StoreStatus(
                self._fault is None, self._fault, self._message, self._since, dict(self._errors), pending
            )


def reimport_audit(db: sqlite3.Connection, audit_file: Path) -> int:
    """Copy every record of audit.jsonl into a new store's audit table; returns how many."""
    from remediations.audit import JsonlAuditLog

    rows = []
    for data in JsonlAuditLog(audit_file).entries():
        try:
            at = datetime.fromisoformat(str(data["at"])).timestamp()
        except (KeyError, ValueError):
            continue
        row = audit_row(data)
        rows.append((at, *row))
    if not rows:
        return 0
    try:
        db.execute("BEGIN IMMEDIATE")
        db.executemany(
            "INSERT INTO audit (at, actor, host, remediation, target, mode, outcome, detail)"
            " VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            rows,
        )
        db.execute("COMMIT")
    except sqlite3.Error as err:
        if db.in_transaction:
            with contextlib.suppress(sqlite3.Error):
                db.execute("ROLLBACK")
        log.error("%s: audit records not re-imported (%s); audit.jsonl still has them", audit_file, err)
        return 0
    return len(rows)


def audit_row(data: dict[str, Any]) -> tuple[str, str, str, str, str, str, str]:
    """(actor, host, remediation, target, mode, outcome, detail JSON) of an audit record as audit.jsonl has it."""
    detail = {k: data.get(k) for k in ("run_id", "environment", "message", "plan", "backups", "detail")}
    return (
        str(data.get("actor", "")),
        str(data.get("host", "")),
        str(data.get("remediation", "")),
        str(data.get("target", "")),
        str(data.get("mode", "")),
        str(data.get("outcome", "")),
        json.dumps(detail, sort_keys=True),
    )
