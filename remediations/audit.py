"""The audit trail: who ran which remediation, when, where, on what, how it ended.

Every plan shown and every apply produces records; an apply writes `started` before its
first side effect and its outcome afterwards, so a process killed in between leaves a
`started` record that the next run completes with `interrupted`. Records go to every sink:
the append-only JSON-lines file (`JsonlAuditLog`) and whatever the caller injects (the
daemon adds its state store; this package does not import `daemon/`). Every string of a
record passes through `collectors.secrets.redact`, so no registered secret enters the audit.
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any, BinaryIO

from filelock import FileLock

from collectors.secrets import redact
from remediations.errors import RemediationError

log = logging.getLogger("certmon.remediations")

AUDIT_FILE = "audit.jsonl"


class AuditError(RemediationError):
    """An audit record could not be written."""


@dataclass(frozen=True)
class AuditRecord:
    """One event of one remediation run."""

    run_id: str
    at: datetime
    actor: str
    host: str
    environment: str
    remediation: str
    target: str
    mode: str  # "dry-run" or "apply"; the daemon's API adds one "api" record per call
    outcome: str
    message: str = ""
    plan: Mapping[str, Any] | None = None
    backups: tuple[str, ...] = ()
    detail: Mapping[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """The record as JSON-ready data, every string redacted."""
        return scrub(
            {
                "run_id": self.run_id,
                "at": self.at.isoformat(),
                "actor": self.actor,
                "host": self.host,
                "environment": self.environment,
                "remediation": self.remediation,
                "target": self.target,
                "mode": self.mode,
                "outcome": self.outcome,
                "message": self.message,
                "plan": dict(self.plan) if self.plan is not None else None,
                "backups": list(self.backups),
                "detail": dict(self.detail),
            }
        )


def scrub(value: Any) -> Any:
    """Redact registered secrets in every string of a JSON-like value."""
    if isinstance(value, str):
        return redact(value)
    if isinstance(value, Mapping):
        return {redact(str(k)): scrub(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [scrub(v) for v in value]
    return value


AuditSink = Callable[[AuditRecord], None]


class JsonlAuditLog:
    """Append-only JSON-lines file; one line per record, fsynced, appends serialised across processes."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._lock = FileLock(str(path) + ".lock", timeout=30)

    def __call__(self, record: AuditRecord) -> None:
        """Append one record."""
        line = (json.dumps(record.to_dict(), sort_keys=True, ensure_ascii=False) + "\n").encode()
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with self._lock, open(self.path, "a+b") as handle:
            self._cut_torn_tail(handle)
            handle.write(line)
            handle.flush()
            os.fsync(handle.fileno())

    def _cut_torn_tail(self, handle: BinaryIO) -> None:
        """Drop what a process killed mid-append left after the last whole line.

        A write of a few kilobytes can stop part-way when SIGKILL arrives; the fragment was never
        a record (its writer died before any other sink had it), so the file keeps whole lines only.
        """
        end = handle.seek(0, os.SEEK_END)
        if end == 0:
            return
        handle.seek(max(0, end - 1))
        if handle.read(1) == b"\n":
            return
        # Search backwards, a block at a time, for the end of the last whole line.
        position, keep = end, 0
        while position > 0:
            start = max(0, position - 65536)
            handle.seek(start)
            block = handle.read(position - start)
            newline = block.rfind(b"\n")
            if newline >= 0:
                keep = start + newline + 1
                break
            position = start
        log.warning("%s: removed %d bytes of a record a killed process was writing", self.path, end - keep)
        handle.truncate(keep)
        handle.flush()
        os.fsync(handle.fileno())

    def entries(self) -> list[dict[str, Any]]:
        """Every record, oldest first; a torn last line (a crash mid-append, not yet cut) is skipped."""
        try:
            lines = self.path.read_text(encoding="utf-8").splitlines()
        except FileNotFoundError:
            return []
        out = []
        for line in lines:
            try:
                out.append(json.loads(line))
            except ValueError:
                continue
        return out


class Auditor:
    """Sends each record to every sink."""

    def __init__(self, sinks: Iterable[AuditSink]) -> None:
        self.sinks: Sequence[AuditSink] = tuple(sinks)

    def record(self, record: AuditRecord, *, required: bool = False) -> list[str]:
        """Write to every sink; returns the failures, or raises AuditError when `required`."""
        failures = []
        for sink in self.sinks:
            try:
                sink(record)
            except Exception as err:  # noqa: BLE001 - one failing sink must not silence the others
                failures.append(redact(f"{type(err).__name__}: {err}"))
        if failures:
            log.error("audit record %s/%s not written everywhere: %s", record.remediation, record.outcome, failures)
            if required:
                raise AuditError("cannot write the audit record: " + "; ".join(failures))
        return failures
