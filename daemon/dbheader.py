"""Read the state store's file header without dropping SQLite's locks.

POSIX record locks (`fcntl`), which SQLite uses on the database file, belong to the process and
inode: closing *any* descriptor of the file releases every lock the process holds on it. Opening
the database file to read its 16-byte header and closing it again, once per evaluation, silently
unlocked the daemon's own connection; a reader in another process (`certmon status`, a test
polling the store) then believed it was the last connection, checkpointed and deleted
`certmon.db-wal` and `-shm` under the daemon, whose later commits went to an unlinked WAL: invisible
to every other process, and lost on a crash.

So the header is read through one descriptor opened once and closed only after the SQLite
connection that shares the file is closed.
"""

from __future__ import annotations

import os
import threading
from pathlib import Path

HEADER_SIZE = 16


class HeaderReader:
    """One long-lived read-only descriptor on a database file, for its header."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._fd: int | None = None
        self._lock = threading.Lock()

    def read(self) -> bytes | None:
        """The file's first bytes, or None when it cannot be opened (missing, unreadable)."""
        with self._lock:
            if self._fd is None:
                try:
                    self._fd = os.open(self.path, os.O_RDONLY | getattr(os, "O_BINARY", 0))
                except OSError:
                    return None
            try:
                os.lseek(self._fd, 0, os.SEEK_SET)
                return os.read(self._fd, HEADER_SIZE)
            except OSError:
                return None

    def close(self) -> None:
        """Close the descriptor: only once the SQLite connection on the same file is closed."""
        with self._lock:
            if self._fd is not None:
                fd, self._fd = self._fd, None
                os.close(fd)
