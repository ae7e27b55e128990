"""One daemon per data directory: a second `certmon run` on the same folder refuses to start.

Two daemons writing the same history would each mark the other's observations as gone. The
lock is `filelock`'s (`fcntl.flock` on POSIX, `msvcrt.locking` on Windows): the operating
system releases it with the process, so a killed daemon leaves nothing to clean up. The holder
writes its process id and host next to the lock, so the refusal can say who holds it.
`certmon status`, `collect --once` and `remediate` share the store with a running daemon
(SQLite WAL) and do not take this lock.
"""

from __future__ import annotations

import json
import logging
import os
import socket
from datetime import UTC, datetime
from pathlib import Path

from filelock import FileLock, Timeout

from daemon.statefaults import StateError, StateFault

log = logging.getLogger("certmon.state")

LOCK_FILE = "certmon.lock"
HOLDER_FILE = "certmon.lock.json"


class DataDirInUse(StateError):
    """Another daemon runs on the same data directory."""


class DataDirLock:
    """The data directory's daemon lock."""

    def __init__(self, data_dir: Path) -> None:
        self.data_dir = data_dir
        self.path = data_dir / LOCK_FILE
        self._lock = FileLock(str(self.path), timeout=0, thread_local=False, is_singleton=False)

    def acquire(self) -> bool:
        """Take the lock; raise DataDirInUse naming the holder. False when the folder cannot hold a lock file."""
        try:
            self.data_dir.mkdir(parents=True, exist_ok=True)
            self._lock.acquire()
        except Timeout as err:  # a TimeoutError, hence an OSError: test it first
            raise DataDirInUse(
                f"{self.data_dir}: another certmon daemon uses this data directory ({self._holder()}); "
                "stop it or give this one its own data_dir",
                StateFault.BUSY,
            ) from err
        except OSError as err:
            # A read-only data directory: nothing can be written, so two daemons cannot corrupt it.
            log.warning("%s: cannot lock the data directory (%s); running without the lock", self.data_dir, err)
            return False
        try:
            holder = {"pid": os.getpid(), "host": socket.gethostname(), "since": datetime.now(UTC).isoformat()}
            (self.data_dir / HOLDER_FILE).write_text(json.dumps(holder), encoding="utf-8")
        except OSError:
            pass  # who holds it is a courtesy; the lock itself is what counts
        return True

    def _holder(self) -> str:
        try:
            data = json.loads((self.data_dir / HOLDER_FILE).read_text(encoding="utf-8"))
            return f"pid {data.get('pid', '?')} on {data.get('host', '?')}, since {data.get('since', '?')}"
        except (OSError, ValueError, AttributeError):
            return "holder unknown"

    def release(self) -> None:
        """Release the lock (the holder file stays: it names the last holder)."""
        if self._lock.is_locked:
            self._lock.release()
