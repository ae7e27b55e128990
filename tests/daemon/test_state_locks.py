"""The store's health checks never drop SQLite's locks: another process reading the store cannot delete its WAL.

POSIX record locks belong to the process: closing any descriptor of the database file releases
them. A check that opened and closed the file to read its header let a reader in another process
(`certmon status`, a crash test polling the store) checkpoint and delete `certmon.db-wal` under the
daemon; every later commit went to the unlinked WAL, invisible to others and lost on SIGKILL.
"""

from __future__ import annotations

import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

from daemon.state import DB_FILE, StateStore

READ = "import sqlite3, sys; db = sqlite3.connect(sys.argv[1]); print(db.execute('SELECT COUNT(*) FROM progress_sample').fetchone()[0]); db.close()"


def _count_from_another_process(path: Path) -> int:
    done = subprocess.run(
        [sys.executable, "-c", READ, str(path)], capture_output=True, text=True, timeout=60, check=True
    )
    return int(done.stdout.strip())


def test_checks_keep_the_wal_visible_to_other_processes(tmp_path: Path) -> None:
    store = StateStore(tmp_path)
    try:
        at = datetime(2026, 11, 27, 12, 0, tzinfo=UTC)
        wal = tmp_path / f"{DB_FILE}-wal"
        for index in range(3):
            store.add_progress("AXDB/probe", at + timedelta(minutes=index), 100.0 - index, 100.0)
            store.check()  # what every evaluation does: look for a deleted, replaced or overwritten file
            # The reader closes its connection; the daemon's must still hold the WAL and its lock.
            assert _count_from_another_process(store.path) == index + 1
            assert wal.exists(), "a reader in another process deleted the WAL the store still writes to"
            assert store.status().up
    finally:
        store.close()
    assert _count_from_another_process(tmp_path / DB_FILE) == 3
