"""One remediation at a time per environment, across processes (a portable file lock).

`filelock` locks with the operating system's own primitive (`fcntl.flock` on POSIX,
`msvcrt.locking` on Windows), so a killed holder releases the lock with its process: no
stale lock files to clean up by hand. Who holds the lock is written next to it, so that a
refused operator learns which remediation, user, host and process to wait for.
"""

from __future__ import annotations

import json
import os
import socket
from datetime import datetime
from pathlib import Path
from types import TracebackType
from typing import Any

from filelock import FileLock, Timeout

from remediations.errors import RemediationError
from remediations.files import atomic_write, remove_stale_temp_files


class RemediationBusy(RemediationError):
    """Another remediation holds the environment's lock."""


class EnvironmentLock:
    """Exclusive lock for one environment's remediations; waits up to `timeout` seconds."""

    def __init__(self, data_dir: Path, environment: str, timeout: float) -> None:
        self.folder = data_dir / "locks"
        self.path = self.folder / f"remediation-{environment}.lock"
        self.holder_path = self.folder / f"remediation-{environment}.holder.json"
        self.environment = environment
        self.timeout = timeout
        self._lock: FileLock | None = None

    def holder(self) -> dict[str, Any]:
        """Who holds (or last held) the lock, as recorded by the holder."""
        try:
            data = json.loads(self.holder_path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return {}
        return data if isinstance(data, dict) else {}

    def acquire(self, *, remediation: str, actor: str, now: datetime) -> None:
        """Take the lock or raise RemediationBusy naming the holder."""
        lock = FileLock(str(self.path), timeout=self.timeout)
        try:
            self.folder.mkdir(parents=True, exist_ok=True)
            lock.acquire()
        except Timeout:  # a TimeoutError, hence an OSError: test it first
            holder = self.holder()
            who = (
                f"{holder.get('remediation', '?')} by {holder.get('actor', '?')}@{holder.get('host', '?')} "
                f"(pid {holder.get('pid', '?')}, since {holder.get('since', '?')})"
                if holder
                else "another process"
            )
            raise RemediationBusy(
                f"environment {self.environment}: another remediation is running: {who}; "
                f"waited {self.timeout:g} s; try again when it has finished"
            ) from None
        except OSError as err:
            raise RemediationError(f"{self.path}: cannot take the remediation lock: {err}") from err
        self._lock = lock
        remove_stale_temp_files(self.holder_path)
        record = {
            "remediation": remediation,
            "actor": actor,
            "host": socket.gethostname(),
            "pid": os.getpid(),
            "since": now.isoformat(),
        }
        try:
            atomic_write(self.holder_path, json.dumps(record).encode())
        except Exception:
            lock.release()
            self._lock = None
            raise

    def release(self) -> None:
        """Release the lock (the holder record stays, for the next refused operator's message)."""
        if self._lock is not None:
            self._lock.release()
            self._lock = None

    def __enter__(self) -> EnvironmentLock:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, error: BaseException | None, trace: TracebackType | None
    ) -> None:
        self.release()
