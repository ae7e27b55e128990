"""The state store's recovery from faults found while running: a file deleted, replaced or overwritten.

A mixin of `StateStore` (daemon/state.py), which holds the connection and the health; here is
only what happens when the file under the connection is no longer the one it opened.
"""

from __future__ import annotations

import contextlib
import sqlite3
import threading
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

from daemon.dbheader import HeaderReader
from daemon.statefaults import StateError, StateFault, StoreHealth, classify, log, quarantine, reimport_audit

SQLITE_HEADER = b"SQLite format 3\x00"


class RecoveryMixin:
    """Notice and repair a database file changed behind the daemon's back."""

    path: Path
    health: StoreHealth
    audit_file: Path | None
    recreated: bool
    _lock: threading.RLock
    _db: sqlite3.Connection | None
    _identity: tuple[int, int] | None
    _header: HeaderReader
    _stat: Callable[[], tuple[int, int] | None]
    _open: Callable[..., sqlite3.Connection]
    _flush: Callable[[], None]

    def check(self) -> None:
        """Notice a file deleted or replaced behind the daemon's back, and write what waits in memory."""
        with self._lock:
            if self._db is not None and self._stat() != self._identity:
                self._rescue()
            elif self._db is not None and not self._header_ok():
                failure = StateError(f"{self.path}: the file's SQLite header was overwritten", StateFault.CORRUPT)
                self.health.failed("check", failure)
                self._replace_corrupt(failure)
            with contextlib.suppress(StateError):
                self._flush()

    def _header_ok(self) -> bool:
        """True when the file still starts like a SQLite database (cheap; a full check is only done at start)."""
        # Through a descriptor kept open: closing one would drop SQLite's locks (daemon/dbheader.py).
        header = self._header.read()
        if header is None:
            return True  # unreadable is the next write's business, not corruption
        return header in (b"", SQLITE_HEADER)

    def _rescue(self) -> None:
        """Write the database the open connection still holds back to its path."""
        assert self._db is not None
        replaced = self.path.exists()
        what = "replaced" if replaced else "deleted"
        try:
            if replaced:
                quarantine(self.path, datetime.now(UTC))
            fresh = sqlite3.connect(self.path, check_same_thread=False, timeout=30, isolation_level=None)
            self._db.backup(fresh)
            fresh.execute("PRAGMA journal_mode=WAL")
            fresh.execute("PRAGMA synchronous=NORMAL")
        except (OSError, sqlite3.Error) as err:
            self.health.failed("rescue", StateError(f"{self.path}: {what} while running; {err}", classify(err)))
            return
        with contextlib.suppress(sqlite3.Error):
            self._db.close()
        self._header.close()
        self._db, self._identity = fresh, self._stat()
        self.health.failed("rescue", StateError(f"{self.path}: {what} while running", StateFault.MISSING))
        self.health.succeeded()
        log.error("%s was %s while the daemon ran: written back from the open copy", self.path, what)

    def _replace_corrupt(self, failure: StateError) -> None:
        """Keep the corrupt file aside and start a new store, with the audit records from audit.jsonl."""
        try:
            kept = quarantine(self.path, datetime.now(UTC), copy=True) if self.path.exists() else None
        except OSError as err:
            log.error("%s is corrupt and cannot be copied aside yet: %s", self.path, err)
            return
        if self._db is not None:
            with contextlib.suppress(sqlite3.Error):
                self._db.close()
        self._db = None
        self._header.close()
        try:
            for suffix in ("", "-wal", "-shm"):
                self.path.with_name(self.path.name + suffix).unlink(missing_ok=True)
            db = self._open(check=False)
        except (OSError, StateError) as err:
            log.error("%s is corrupt and cannot be replaced yet: %s", self.path, err)
            return
        self.recreated = True
        restored = reimport_audit(db, self.audit_file) if self.audit_file is not None else 0
        log.error(
            "%s is corrupt (%s): kept as %s; continuing with a new store (%d audit records re-imported)",
            self.path,
            failure.fault,
            kept.name if kept else "nothing to keep",
            restored,
        )
