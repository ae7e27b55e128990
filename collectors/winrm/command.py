"""Operator-approved commands: one PowerShell script with named parameters, run on one node.

The inventory is the only thing certmon runs on its own. Anything else is a remediation's
`ApprovedCommand`: a script path and parameter values, shown to the operator exactly as
`text()` renders them (the plan's digest covers that text) and sent as `script_text()`,
which only adds a prologue that stops on the first error and runs in the script's folder.
Values are single-quoted PowerShell literals, so nothing in them is interpreted.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from collectors.base import Deadline
from collectors.winrm.output import read_stderr, snippet
from collectors.winrm.script import CMD_LINE_LIMIT, POWERSHELL, POWERSHELL_FLAGS, encode_command
from collectors.winrm.session import CommandResult, WinRMSession
from collectors.winrm.transport import Endpoint

# C:\folder\file or \\server\share\folder\file; no characters Windows forbids in names.
_WINDOWS_PATH = re.compile(r"(?:[A-Za-z]:\\|\\\\[^\\/<>:\"|?*]+\\[^\\/<>:\"|?*]+\\)[^/<>:\"|?*\x00-\x1f]+")
_PARAMETER = re.compile(r"[A-Za-z][A-Za-z0-9]{0,63}")
PROLOGUE = (
    "$ErrorActionPreference = 'Stop'",
    "$ProgressPreference = 'SilentlyContinue'",
    "trap { [Console]::Error.WriteLine($_.Exception.Message); exit 1 }",
)


def check_windows_path(path: str, suffix: str = "") -> str:
    """An absolute Windows path (drive or UNC) ending in `suffix`, or ValueError."""
    if not _WINDOWS_PATH.fullmatch(path) or "\\..\\" in path + "\\" or "\\.\\" in path + "\\":
        raise ValueError(f"{path!r} is not an absolute Windows path (C:\\folder\\file or \\\\server\\share\\file)")
    if suffix and not path.lower().endswith(suffix.lower()):
        raise ValueError(f"{path!r} does not end in {suffix}")
    return path


def quote(value: str) -> str:
    """A PowerShell single-quoted literal: nothing inside is expanded."""
    if any(ord(c) < 0x20 for c in value):
        raise ValueError("control characters are not allowed in a command value")
    return "'" + value.replace("'", "''") + "'"


@dataclass(frozen=True)
class ApprovedCommand:
    """A script and its named parameters, exactly as the operator approves them."""

    script: str
    parameters: tuple[tuple[str, str], ...]

    def __post_init__(self) -> None:
        check_windows_path(self.script, ".ps1")
        for name, _ in self.parameters:
            if not _PARAMETER.fullmatch(name):
                raise ValueError(f"invalid parameter name {name!r}")

    @property
    def folder(self) -> str:
        """The script's folder (the infrastructure scripts load their modules from it)."""
        return self.script.rsplit("\\", 1)[0]

    def text(self) -> str:
        """The invocation as the operator reads it."""
        arguments = "".join(f" -{name} {quote(value)}" for name, value in self.parameters)
        return f"& {quote(self.script)}{arguments}"

    def script_text(self) -> str:
        """What runs on the node: stop on errors, go to the script's folder, invoke, exit 0."""
        return "\n".join((*PROLOGUE, f"Set-Location -LiteralPath {quote(self.folder)}", self.text(), "exit 0"))

    def command_line(self) -> tuple[str, tuple[str, ...]]:
        """powershell.exe and its arguments (the script travels base64-encoded)."""
        arguments = (*POWERSHELL_FLAGS, encode_command(self.script_text()))
        length = len(POWERSHELL) + sum(1 + len(a) for a in arguments)
        if length > CMD_LINE_LIMIT:
            raise ValueError(f"the command would be {length} characters, over cmd.exe's {CMD_LINE_LIMIT}")
        return POWERSHELL, arguments


@dataclass(frozen=True, slots=True)
class CommandOutcome:
    """How an approved command ended: exit code, what it printed, and its error messages."""

    exit_code: int
    output: str
    errors: tuple[str, ...]

    @property
    def ok(self) -> bool:
        """Exit code 0 and no error record."""
        return self.exit_code == 0 and not self.errors


def outcome_of(result: CommandResult) -> CommandOutcome:
    """The outcome with stdout made readable and stderr's CLIXML decoded."""
    stderr = read_stderr(result.stderr)
    return CommandOutcome(result.exit_code, snippet(result.stdout, 2000), stderr.errors)


def run_in(session: WinRMSession, command: ApprovedCommand, deadline: Deadline) -> CommandOutcome:
    """Run the command in this session and close it afterwards (CollectorError when the node cannot run it)."""
    try:
        executable, arguments = command.command_line()
        return outcome_of(session.run(executable, arguments, deadline))
    finally:
        session.close(2.0)


def run_approved(endpoint: Endpoint, command: ApprovedCommand, deadline: Deadline) -> CommandOutcome:
    """Run the command in a session of its own (the inventory's session stays untouched)."""
    return run_in(WinRMSession(endpoint), command, deadline)
