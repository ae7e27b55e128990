"""What a remediation would change, stated exactly: file diffs, SQL with its rows, remote commands.

A `Plan` is computed for real (files read, values compared) both for a dry run and, again
under the lock, for apply; its `digest` identifies it so that an operator (or the API) can
ask apply to proceed only when the plan is still the one they reviewed.

Change kinds, one per kind of side effect:

* `FileChange`: a file's bytes before and after, the values that change, and a unified diff
  (shown without the line-ending characters, which the edit keeps as they were);
* `SqlChange`: the statements (with their parameters) run in one transaction, and the rows
  they would touch as read at planning time;
* `RemoteCommand`: the command and the host it runs on;
* `HttpRequest`: a call to a management API (the Service Fabric gateway) and what its body carries.

A new kind is a frozen dataclass with `kind`, `target`, `summary()`, `render()` and
`to_dict()`; the engine applies file changes itself and leaves the others to the
remediation's own `apply`.
"""

from __future__ import annotations

import difflib
import hashlib
import json
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from remediations.files import sha256


@dataclass(frozen=True, slots=True)
class ValueChange:
    """One setting that changes: where, from what, to what."""

    setting: str
    before: str
    after: str

    def to_dict(self) -> dict[str, str]:
        """JSON form."""
        return {"setting": self.setting, "before": self.before, "after": self.after}


def _diff_lines(data: bytes) -> list[str]:
    utf16 = data.startswith((b"\xff\xfe", b"\xfe\xff"))
    return data.decode("utf-16" if utf16 else "utf-8-sig", errors="replace").splitlines()


def _newline_name(data: bytes) -> str:
    crlf = data.count(b"\r\n")
    lf = data.count(b"\n") - crlf
    return "CRLF" if crlf > lf else "LF"


@dataclass(frozen=True, slots=True)
class FileChange:
    """A file rewritten from `before` to `after` bytes."""

    path: Path
    before: bytes
    after: bytes
    values: tuple[ValueChange, ...] = ()
    #: False for files whose content must not be shown (the diff is replaced by hashes)
    show_diff: bool = True
    kind: str = field(default="file", init=False)
    #: the file `path` resolved to when the plan was made (links followed); apply writes there or nowhere
    resolved: str = field(default="", init=False, compare=False, repr=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "resolved", os.path.realpath(self.path))

    @property
    def target(self) -> str:
        """The file's path."""
        return str(self.path)

    @property
    def before_sha256(self) -> str:
        """Hash of the current content."""
        return sha256(self.before)

    @property
    def after_sha256(self) -> str:
        """Hash of the content apply writes."""
        return sha256(self.after)

    def diff(self) -> str:
        """Unified diff of the text, or a note when the content is not shown."""
        if not self.show_diff:
            return f"(content not shown) sha256 {self.before_sha256} -> {self.after_sha256}\n"
        lines = difflib.unified_diff(
            _diff_lines(self.before),
            _diff_lines(self.after),
            fromfile=f"{self.path} (current)",
            tofile=f"{self.path} (after apply)",
            lineterm="",
        )
        return "".join(line + "\n" for line in lines)

    def summary(self) -> str:
        """One line for lists."""
        settings = ", ".join(v.setting.rsplit(".", 1)[-1] for v in self.values) or "content"
        return f"rewrite {self.path.name}: {settings}"

    def render(self) -> str:
        """The change as an operator reads it."""
        bom = "UTF-8 BOM kept, " if self.before.startswith(b"\xef\xbb\xbf") else ""
        head = f"file {self.path} ({bom}{_newline_name(self.before)} line endings kept)\n"
        values = "".join(f"  {v.setting}: {v.before or '(empty)'} -> {v.after}\n" for v in self.values)
        return head + values + self.diff()

    def to_dict(self) -> dict[str, Any]:
        """JSON form: hashes, values and the diff (never the raw bytes)."""
        return {
            "kind": self.kind,
            "target": self.target,
            "before_sha256": self.before_sha256,
            "after_sha256": self.after_sha256,
            "values": [v.to_dict() for v in self.values],
            "diff": self.diff(),
        }


@dataclass(frozen=True, slots=True)
class SqlStatement:
    """One parameterised statement."""

    sql: str
    parameters: tuple[Any, ...] = ()


@dataclass(frozen=True, slots=True)
class SqlChange:
    """Statements run in one transaction against a database, and the rows they touch."""

    database: str
    statements: tuple[SqlStatement, ...]
    rows: tuple[Mapping[str, Any], ...] = ()
    kind: str = field(default="sql", init=False)

    @property
    def target(self) -> str:
        """The database."""
        return self.database

    def summary(self) -> str:
        """One line for lists."""
        return f"{len(self.statements)} SQL statement(s) on {self.database}"

    def render(self) -> str:
        """Statements and the rows as read now."""
        out = [f"database {self.database} (one transaction)"]
        out += [
            f"  {s.sql}  -- parameters {list(s.parameters)}" if s.parameters else f"  {s.sql}" for s in self.statements
        ]
        out += (["  rows now:"] + [f"    {dict(row)}" for row in self.rows]) if self.rows else ["  rows now: none"]
        return "\n".join(out) + "\n"

    def to_dict(self) -> dict[str, Any]:
        """JSON form."""
        return {
            "kind": self.kind,
            "target": self.target,
            "statements": [{"sql": s.sql, "parameters": list(s.parameters)} for s in self.statements],
            "rows": [dict(row) for row in self.rows],
        }


@dataclass(frozen=True, slots=True)
class RemoteCommand:
    """A command run on a remote host (PowerShell over WinRM)."""

    host: str
    command: str
    shell: str = "powershell"
    kind: str = field(default="remote", init=False)

    @property
    def target(self) -> str:
        """The host."""
        return self.host

    def summary(self) -> str:
        """One line for lists."""
        return f"run a {self.shell} command on {self.host}"

    def render(self) -> str:
        """The host and the command."""
        return f"host {self.host} ({self.shell})\n  {self.command}\n"

    def to_dict(self) -> dict[str, Any]:
        """JSON form."""
        return {"kind": self.kind, "target": self.target, "shell": self.shell, "command": self.command}


@dataclass(frozen=True, slots=True)
class HttpRequest:
    """A call to a management API: method, URL, what it does, and the body's fields as shown to the operator."""

    method: str
    url: str
    description: str
    #: the body's fields; large values (a whole configuration) are summarised, never secrets
    fields: tuple[tuple[str, str], ...] = ()
    kind: str = field(default="http", init=False)

    @property
    def target(self) -> str:
        """The URL."""
        return self.url

    def summary(self) -> str:
        """One line for lists."""
        return f"{self.method} {self.url}"

    def render(self) -> str:
        """The call and its body."""
        body = "".join(f"  {name}: {value}\n" for name, value in self.fields)
        return f"{self.method} {self.url}\n  {self.description}\n{body}"

    def to_dict(self) -> dict[str, Any]:
        """JSON form."""
        return {
            "kind": self.kind,
            "target": self.target,
            "method": self.method,
            "description": self.description,
            "fields": dict(self.fields),
        }


Change = FileChange | SqlChange | RemoteCommand | HttpRequest


@dataclass(frozen=True)
class Plan:
    """Exactly what apply would do, and what the operator must do afterwards."""

    remediation: str
    changes: tuple[Change, ...]
    #: why nothing changes, when `changes` is empty
    reason: str = ""
    #: steps certmon cannot do for the operator (reinstall an agent, restart nodes)
    follow_up: tuple[str, ...] = ()

    @property
    def empty(self) -> bool:
        """True when apply would change nothing."""
        return not self.changes

    @property
    def target(self) -> str:
        """The targets, comma-separated (audit field)."""
        return ", ".join(dict.fromkeys(c.target for c in self.changes))

    def files(self) -> list[FileChange]:
        """The file changes."""
        return [c for c in self.changes if isinstance(c, FileChange)]

    @property
    def digest(self) -> str:
        """Short hash of the plan's substance; equal plans have equal digests."""
        payload = json.dumps([c.to_dict() for c in self.changes], sort_keys=True, default=str)
        return hashlib.sha256(payload.encode()).hexdigest()[:16]

    def render(self) -> str:
        """The whole plan as text."""
        if self.empty:
            return f"nothing to change: {self.reason}\n" if self.reason else "nothing to change\n"
        return "".join(c.render() for c in self.changes)

    def to_dict(self) -> dict[str, Any]:
        """JSON form (used by the CLI, the API and the audit)."""
        return {
            "remediation": self.remediation,
            "digest": self.digest,
            "empty": self.empty,
            "reason": self.reason,
            "changes": [c.to_dict() for c in self.changes],
            "follow_up": list(self.follow_up),
        }


def follow_up_text(steps: Sequence[str]) -> str:
    """Numbered follow-up steps."""
    return "".join(f"  {index}. {step}\n" for index, step in enumerate(steps, 1))
