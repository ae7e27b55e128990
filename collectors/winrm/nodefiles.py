"""Files to a node and back over WinRM: chunked base64 through PowerShell, sizes bounded, SHA-256 checked.

WinRM has no file transfer of its own. Each step here is one small PowerShell script, sent like every
other command (`-EncodedCommand`, so within cmd.exe's 8191-character line): a chunk of at most
`UPLOAD_CHUNK` bytes is appended with `[IO.File]::Open(...)`, a file is read back in chunks with
`[Convert]::ToBase64String`, and the whole file is compared by `Get-FileHash -Algorithm SHA256`
(PowerShell 4.0 and later) with the bytes certmon sent or received. Paths are single-quoted
literals; the scripts are fixed texts with values filled in, so the simulated node can recognise
exactly these and nothing else.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import re

from collectors.base import Deadline
from collectors.errors import CollectorError, Reason
from collectors.winrm.command import PROLOGUE, CommandOutcome, check_windows_path, outcome_of, quote
from collectors.winrm.output import read_stderr
from collectors.winrm.script import CMD_LINE_LIMIT, POWERSHELL, POWERSHELL_FLAGS, encode_command
from collectors.winrm.session import WinRMSession

#: bytes per upload command: 2,048 base64 characters keep the encoded command line far below 8191
UPLOAD_CHUNK = 1536
#: bytes per download command (the answer is bounded by the session's envelope cap, not the command line)
DOWNLOAD_CHUNK = 192 * 1024
#: the largest file certmon sends or fetches this way
MAX_FILE_BYTES = 2 * 1024 * 1024
_HASH_LINE = re.compile(r"^(\d{1,12}) ([0-9A-F]{64})$")
_FOLDER_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")


class NodeFileError(CollectorError):
    """A transfer step failed or its result does not check out."""

    def __init__(self, reason: Reason, message: str) -> None:
        super().__init__("winrm", reason, message)


def temp_folder_script(name: str) -> str:
    """Create `name` in the account's temporary folder; prints the folder's full path."""
    if not _FOLDER_NAME.fullmatch(name):
        raise ValueError(f"invalid temporary folder name {name!r}")
    return "\n".join(
        (
            f"$d = Join-Path ([IO.Path]::GetTempPath()) {quote(name)}",
            "New-Item -ItemType Directory -Path $d | Out-Null",
            "$d",
        )
    )


def write_chunk_script(path: str, chunk: bytes, first: bool) -> str:
    """Append one chunk to `path` (the first chunk creates the file and its folder; an existing file fails)."""
    mode = "CreateNew" if first else "Append"
    lines = [f"$p = {quote(path)}"]
    if first:
        lines.append("[void][IO.Directory]::CreateDirectory([IO.Path]::GetDirectoryName($p))")
    lines += [
        f"$b = [Convert]::FromBase64String('{base64.b64encode(chunk).decode('ascii')}')",
        f"$f = [IO.File]::Open($p, [IO.FileMode]::{mode})",
        "try { $f.Write($b, 0, $b.Length) } finally { $f.Close() }",
    ]
    return "\n".join(lines)


def hash_script(path: str) -> str:
    """Print `<length> <SHA-256 upper-case hex>` of a file."""
    return "\n".join(
        (
            f"$p = {quote(path)}",
            "$i = Get-Item -LiteralPath $p",
            "'{0} {1}' -f $i.Length, (Get-FileHash -LiteralPath $p -Algorithm SHA256).Hash",
        )
    )


def read_chunk_script(path: str, offset: int, count: int) -> str:
    """Print up to `count` bytes of a file from `offset`, base64."""
    return "\n".join(
        (
            f"$f = [IO.File]::OpenRead({quote(path)})",
            f"try {{ $b = New-Object byte[] {count}; [void]$f.Seek({offset}, [IO.SeekOrigin]::Begin); "
            f"$r = $f.Read($b, 0, {count}); [Convert]::ToBase64String($b, 0, $r) }} finally {{ $f.Close() }}",
        )
    )


def remove_stale_script(prefix: str) -> str:
    """Delete the folders `prefix*` in the temporary folder (left by killed runs); prints their names."""
    if not _FOLDER_NAME.fullmatch(prefix):
        raise ValueError(f"invalid temporary folder prefix {prefix!r}")
    return (
        f"Get-ChildItem -LiteralPath ([IO.Path]::GetTempPath()) -Directory -Filter {quote(prefix + '*')} | "
        "ForEach-Object { Remove-Item -LiteralPath $_.FullName -Recurse -Force; $_.Name }"
    )


def remove_folder_script(path: str) -> str:
    """Delete a folder and everything in it."""
    return f"Remove-Item -LiteralPath {quote(path)} -Recurse -Force"


def command_line(script: str) -> tuple[str, tuple[str, ...]]:
    """powershell.exe and its arguments for one transfer script (with the stop-on-error prologue)."""
    arguments = (*POWERSHELL_FLAGS, encode_command("\n".join((*PROLOGUE, script, "exit 0"))))
    length = len(POWERSHELL) + sum(1 + len(a) for a in arguments)
    if length > CMD_LINE_LIMIT:
        raise ValueError(f"the command would be {length} characters, over cmd.exe's {CMD_LINE_LIMIT}")
    return POWERSHELL, arguments


class NodeFiles:
    """One WinRM session to a node, for a sequence of transfer steps and commands; close() when done."""

    def __init__(self, session: WinRMSession) -> None:
        self.session = session
        self.node = session.endpoint.node

    def run(self, script: str, deadline: Deadline, executable: tuple[str, tuple[str, ...]] | None = None) -> str:
        """Run one script; its output, or NodeFileError with the node's error message."""
        program, arguments = executable or command_line(script)
        result = self.session.run(program, arguments, deadline)
        errors = read_stderr(result.stderr).errors
        if result.exit_code != 0 or errors:
            raise self._failed(outcome_of(result))
        # The whole output (a download chunk is up to 256 KiB of base64), not an excerpt.
        return result.stdout.decode("ascii", "replace")

    def run_outcome(self, executable: tuple[str, tuple[str, ...]], deadline: Deadline) -> CommandOutcome:
        """Run a prepared command line and return how it ended (an approved command)."""
        program, arguments = executable
        return outcome_of(self.session.run(program, arguments, deadline))

    def make_temp_folder(self, name: str, deadline: Deadline) -> str:
        """Create a folder in the account's temporary folder; its full Windows path."""
        path = self.run(temp_folder_script(name), deadline).strip()
        try:
            check_windows_path(path)
        except ValueError as err:
            raise NodeFileError(Reason.BAD_OUTPUT, f"{self.node}: the temporary folder is {err}") from None
        if path.rstrip("\\").rsplit("\\", 1)[-1] != name:
            raise NodeFileError(Reason.BAD_OUTPUT, f"{self.node}: the temporary folder is {path!r}, not {name}")
        return path.rstrip("\\")

    def upload(self, data: bytes, path: str, deadline: Deadline) -> None:
        """Write `data` to a new file on the node and check its SHA-256 there."""
        check_windows_path(path)
        if len(data) > MAX_FILE_BYTES:
            raise NodeFileError(Reason.BAD_OUTPUT, f"{path}: {len(data)} bytes, over the {MAX_FILE_BYTES}-byte limit")
        chunks = [data[i : i + UPLOAD_CHUNK] for i in range(0, len(data), UPLOAD_CHUNK)] or [b""]
        for index, chunk in enumerate(chunks):
            self.run(write_chunk_script(path, chunk, first=index == 0), deadline)
        self._check(path, len(data), hashlib.sha256(data).hexdigest().upper(), deadline, "after the copy to")

    def download(self, path: str, deadline: Deadline, limit: int = MAX_FILE_BYTES) -> bytes:
        """A file of the node, read in chunks and checked against its SHA-256 on the node."""
        length, digest = self._stat(path, deadline)
        if length > limit:
            raise NodeFileError(
                Reason.BAD_OUTPUT, f"{self.node}: {path} is {length} bytes, over the {limit}-byte limit"
            )
        received = bytearray()
        while len(received) < length:
            count = min(DOWNLOAD_CHUNK, length - len(received))
            text = self.run(read_chunk_script(path, len(received), count), deadline).strip()
            try:
                chunk = base64.b64decode(text, validate=True)
            except (binascii.Error, ValueError):
                raise NodeFileError(Reason.BAD_OUTPUT, f"{self.node}: reading {path} gave no base64") from None
            if not chunk or len(chunk) > count:
                raise NodeFileError(
                    Reason.BAD_OUTPUT, f"{self.node}: reading {path} at {len(received)} gave {len(chunk)} bytes"
                )
            received += chunk
        data = bytes(received)
        if hashlib.sha256(data).hexdigest().upper() != digest:
            raise NodeFileError(
                Reason.BAD_OUTPUT, f"{self.node}: {path} changed or was damaged while being read (SHA-256)"
            )
        return data

    def remove_stale(self, prefix: str, deadline: Deadline) -> list[str]:
        """Delete earlier runs' folders `prefix*` in the temporary folder; their names."""
        return [line.strip() for line in self.run(remove_stale_script(prefix), deadline).splitlines() if line.strip()]

    def remove_folder(self, path: str, deadline: Deadline) -> None:
        """Delete a folder (with its files) on the node."""
        self.run(remove_folder_script(path), deadline)

    def close(self) -> None:
        """Close the session (its shell is deleted on the node)."""
        self.session.close(2.0)

    def _stat(self, path: str, deadline: Deadline) -> tuple[int, str]:
        line = self.run(hash_script(path), deadline).strip()
        found = _HASH_LINE.fullmatch(line)
        if found is None:
            raise NodeFileError(
                Reason.BAD_OUTPUT, f"{self.node}: unexpected answer to Get-FileHash {path}: {line[:80]!r}"
            )
        return int(found.group(1)), found.group(2)

    def _check(self, path: str, length: int, digest: str, deadline: Deadline, when: str) -> None:
        got_length, got_digest = self._stat(path, deadline)
        if (got_length, got_digest) != (length, digest):
            raise NodeFileError(
                Reason.BAD_OUTPUT,
                f"{self.node}: {when} {path} the node has {got_length} bytes with SHA-256 {got_digest}, "
                f"certmon sent {length} bytes with {digest}",
            )

    def _failed(self, outcome: CommandOutcome) -> NodeFileError:
        errors = "; ".join(outcome.errors) or outcome.output or "no output"
        return NodeFileError(Reason.PROTOCOL_ERROR, f"{self.node}: exit {outcome.exit_code}: {errors}")
