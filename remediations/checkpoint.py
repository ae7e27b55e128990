"""Every side effect of one apply, recorded so that it can be undone (certbot's Reverter, in small).

`write_file` is the one way a remediation changes a file: it checks the file still holds
the bytes the plan was computed from, stores a backup, registers the undo step *before*
writing (a signal can arrive right after the write), writes atomically, and re-reads the
file. `on_rollback` registers a compensation for side effects that are not files (a SQL
transaction that committed, a remote command with an inverse). `rollback` undoes
everything in reverse order and reports what it did; it never raises, because it runs
while something else has already gone wrong.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from collectors.errors import CertmonError
from collectors.files import read_bytes
from remediations.errors import RemediationError, VerificationError
from remediations.files import atomic_write, sha256, write_backup
from remediations.plan import FileChange

log = logging.getLogger("certmon.remediations")


class TargetChanged(RemediationError):
    """The target no longer holds the bytes the plan was computed from."""


@dataclass(frozen=True, slots=True)
class _Undo:
    description: str
    action: Callable[[], str]


class Checkpoint:
    """The side effects of one apply: backups taken, files written, compensations registered."""

    def __init__(self, backup_dir: Path) -> None:
        self.backup_dir = backup_dir
        self.backups: list[Path] = []
        self.written: list[Path] = []
        self._undo: list[_Undo] = []

    def write_file(self, change: FileChange) -> Path:
        """Back up, write atomically, re-read; returns the backup path."""
        path = change.path
        # A link planted since the plan (the file, or a folder above it) would take the write elsewhere.
        resolved = os.path.realpath(path)
        if resolved != change.resolved:
            raise TargetChanged(
                f"{path}: now resolves to {resolved}, the plan was made for {change.resolved} "
                "(a link was planted or moved); nothing was written, plan again"
            )
        current = read_bytes(path)
        if current != change.before:
            raise TargetChanged(
                f"{path}: changed since the plan was made (sha256 {sha256(current)[:12]}, "
                f"planned from {change.before_sha256[:12]}); nothing was written, plan again"
            )
        backup = write_backup(path, change.before, self.backup_dir)
        self.backups.append(backup)
        self._undo.append(_Undo(f"restore {path} from {backup}", lambda: self._restore(path, change.before)))
        atomic_write(path, change.after)
        self.written.append(path)
        if read_bytes(path) != change.after:
            raise VerificationError(f"{path}: does not read back as written")
        return backup

    @staticmethod
    def _restore(path: Path, original: bytes) -> str:
        try:
            if read_bytes(path) == original:
                return "unchanged"
        except CertmonError:
            pass  # missing or unreadable: write the original back
        atomic_write(path, original)
        if read_bytes(path) != original:
            raise VerificationError(f"{path}: does not read back as the original after restore")
        return "restored"

    def on_rollback(self, description: str, action: Callable[[], str]) -> None:
        """Register a compensation; `action` returns a word for the report ("restored")."""
        self._undo.append(_Undo(description, action))

    def rollback(self) -> tuple[list[str], list[str]]:
        """Undo in reverse order; returns (what was done, what failed). Never raises."""
        done: list[str] = []
        failed: list[str] = []
        while self._undo:
            undo = self._undo.pop()
            try:
                done.append(f"{undo.description}: {undo.action()}")
            except Exception as err:  # noqa: BLE001 - a failing undo must not stop the others
                log.error("rollback step failed: %s: %s", undo.description, err)
                failed.append(f"{undo.description}: {err}")
        return done, failed
