"""The account's temporary folder on a simulated node, and certmon's file-transfer scripts run in it.

node.json: `{"temp": {"path": "C:\\\\Users\\\\svc-certmon\\\\AppData\\\\Local\\\\Temp\\\\",
"folder": "../../node-temp/AOS1"}}`:
what `[IO.Path]::GetTempPath()` returns in a WinRM session of the account (its own profile's Temp
folder, with the trailing backslash), and the lab folder standing for it (relative to the node folder).
Only that folder exists for these scripts; any other path fails as .NET would
("Could not find a part of the path '...'."). A script is run only when its text is exactly what
collectors/winrm/nodefiles.py builds for the values it carries; errors come back as the scripts'
trap writes them: the exception's message on stderr (plain text), exit code 1.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import re
import shutil
from pathlib import Path
from typing import Any

from collectors.winrm import nodefiles
from collectors.winrm.command import PROLOGUE

_Q = r"'((?:[^']|'')*)'"
_TEMP = re.compile(rf"^\$d = Join-Path \(\[IO\.Path\]::GetTempPath\(\)\) {_Q}\n")
_WRITE = re.compile(
    rf"^\$p = {_Q}\n(?:.*\n)?\$b = \[Convert\]::FromBase64String\('([A-Za-z0-9+/=]*)'\)\n"
    r"\$f = \[IO\.File\]::Open\(\$p, \[IO\.FileMode\]::(CreateNew|Append)\)"
)
_HASH = re.compile(rf"^\$p = {_Q}\n\$i = Get-Item")
_READ = re.compile(
    rf"^\$f = \[IO\.File\]::OpenRead\({_Q}\)\n" r"try { \$b = New-Object byte\[\] (\d+); \[void\]\$f\.Seek\((\d+),"
)
_STALE = re.compile(rf"^Get-ChildItem -LiteralPath \(\[IO\.Path\]::GetTempPath\(\)\) -Directory -Filter {_Q} \|")
_REMOVE = re.compile(rf"^Remove-Item -LiteralPath {_Q} -Recurse -Force$")
_FORBIDDEN = re.compile(r'[<>:"/|?*\x00-\x1f]')


class ScriptError(Exception):
    """The exception message the script's trap writes to stderr."""


def temp_path(facts: dict[str, Any]) -> str:
    """What GetTempPath() answers on this node ('' when the node has no temporary folder configured)."""
    return str(dict(facts.get("temp") or {}).get("path", ""))


def local(node_root: Path, facts: dict[str, Any], windows_path: str) -> Path | None:
    """The lab path of a Windows path inside the temporary folder, or None when it is elsewhere."""
    settings = dict(facts.get("temp") or {})
    prefix, folder = str(settings.get("path", "")).rstrip("\\"), settings.get("folder")
    if not prefix or not isinstance(folder, str):
        return None
    if windows_path.lower() != prefix.lower() and not windows_path.lower().startswith(prefix.lower() + "\\"):
        return None
    parts = [p for p in windows_path[len(prefix) :].split("\\") if p]
    if any(p in (".", "..") or _FORBIDDEN.search(p) for p in parts):
        return None
    return (node_root / folder).joinpath(*parts)


def _unquote(text: str) -> str:
    return text.replace("''", "'")


def run(script: str, node_root: Path, facts: dict[str, Any]) -> str | None:
    """The output of one transfer script, None when the script is not one of them; ScriptError on failure."""
    prologue = "\n".join(PROLOGUE) + "\n"
    if not script.startswith(prologue) or not script.endswith("\nexit 0"):
        return None
    body = script[len(prologue) : -len("\nexit 0")]
    if (found := _TEMP.match(body)) and body == nodefiles.temp_folder_script(_unquote(found.group(1))):
        return _make_temp(node_root, facts, _unquote(found.group(1)))
    if found := _WRITE.match(body):
        path, data, mode = _unquote(found.group(1)), found.group(2), found.group(3)
        try:
            chunk = base64.b64decode(data, validate=True)
        except (binascii.Error, ValueError):
            return None
        if body == nodefiles.write_chunk_script(path, chunk, first=mode == "CreateNew"):
            return _write(node_root, facts, path, chunk, mode == "CreateNew")
    if (found := _HASH.match(body)) and body == nodefiles.hash_script(_unquote(found.group(1))):
        return _hash(_file(node_root, facts, _unquote(found.group(1)), "Get-Item"))
    if found := _READ.match(body):
        path, count, offset = _unquote(found.group(1)), int(found.group(2)), int(found.group(3))
        if body == nodefiles.read_chunk_script(path, offset, count):
            return _read(_file(node_root, facts, path, "OpenRead"), offset, count)
    if (found := _STALE.match(body)) and _unquote(found.group(1)).endswith("*"):
        prefix = _unquote(found.group(1))[:-1]
        if body == nodefiles.remove_stale_script(prefix):
            return _remove_stale(node_root, facts, prefix)
    if (found := _REMOVE.match(body)) and body == nodefiles.remove_folder_script(_unquote(found.group(1))):
        return _remove(node_root, facts, _unquote(found.group(1)))
    return None


def _make_temp(node_root: Path, facts: dict[str, Any], name: str) -> str:
    base = temp_path(facts)
    target = local(node_root, facts, base.rstrip("\\") + "\\" + name) if base else None
    full = base.rstrip("\\") + "\\" + name
    if target is None:
        raise ScriptError(f"Could not find a part of the path '{full}'.")
    if target.exists():
        raise ScriptError(f"An item with the specified name {full} already exists.")
    target.parent.mkdir(parents=True, exist_ok=True)
    target.mkdir()
    return full + "\r\n"


def _write(node_root: Path, facts: dict[str, Any], path: str, chunk: bytes, first: bool) -> str:
    target = local(node_root, facts, path)
    if target is None or (not first and not target.parent.is_dir()):
        raise ScriptError(f"Could not find a part of the path '{path}'.")
    if first:
        target.parent.mkdir(parents=True, exist_ok=True)  # [IO.Directory]::CreateDirectory makes every level
        if target.exists():
            raise ScriptError(f'Exception calling "Open" with "2" argument(s): "The file \'{path}\' already exists."')
        target.write_bytes(chunk)
    else:
        with target.open("ab") as stream:
            stream.write(chunk)
    return ""


def _file(node_root: Path, facts: dict[str, Any], path: str, verb: str) -> Path:
    target = local(node_root, facts, path)
    if target is None or not target.is_file():
        if verb == "OpenRead":
            raise ScriptError(f'Exception calling "OpenRead" with "1" argument(s): "Could not find file \'{path}\'."')
        raise ScriptError(f"Cannot find path '{path}' because it does not exist.")
    return target


def _hash(target: Path) -> str:
    data = target.read_bytes()
    return f"{len(data)} {hashlib.sha256(data).hexdigest().upper()}\r\n"


def _read(target: Path, offset: int, count: int) -> str:
    with target.open("rb") as stream:
        stream.seek(offset)
        return base64.b64encode(stream.read(count)).decode("ascii") + "\r\n"


def _remove(node_root: Path, facts: dict[str, Any], path: str) -> str:
    target = local(node_root, facts, path)
    if target is None or not target.exists():
        raise ScriptError(f"Cannot find path '{path}' because it does not exist.")
    if target.is_dir():
        shutil.rmtree(target)
    else:
        target.unlink()
    return ""


def _remove_stale(node_root: Path, facts: dict[str, Any], prefix: str) -> str:
    base = temp_path(facts)
    folder = local(node_root, facts, base.rstrip("\\")) if base else None
    if folder is None:
        raise ScriptError(f"Cannot find path '{base}' because it does not exist.")
    if not folder.is_dir():
        return ""  # an empty temporary folder: nothing to list
    # -Filter on the file system is case-insensitive; NTFS lists a folder in upper-cased name order.
    removed = sorted(
        (p for p in folder.iterdir() if p.is_dir() and p.name.lower().startswith(prefix.lower())),
        key=lambda p: p.name.upper(),
    )
    for path in removed:
        shutil.rmtree(path)
    return "".join(f"{p.name}\r\n" for p in removed)
