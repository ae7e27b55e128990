"""The inventory script: loaded from inventory.ps1, compacted, parameterised, and encoded for powershell.exe."""

from __future__ import annotations

import base64
import re
from collections.abc import Sequence
from functools import cache
from importlib import resources

SCRIPT_FILE = "inventory.ps1"
# cmd.exe refuses longer command lines; WinRM runs the command through it.
CMD_LINE_LIMIT = 8191
POWERSHELL = "powershell.exe"
POWERSHELL_FLAGS = ("-NoLogo", "-NoProfile", "-NonInteractive", "-EncodedCommand")
STORE_NAME = re.compile(r"(LocalMachine|CurrentUser)\\[A-Za-z0-9][A-Za-z0-9 _.-]{0,39}")
# Real store names are short (the longest of Windows' own, "Homegroup Machine Certificates", has 30
# characters); 40 keeps eight of them inside the command line with the inventory script.
MAX_STORES = 8


# PowerShell needs no blank next to these outside string literals; dropping them keeps the command short.
_TIGHT = frozenset("=;,{}()|+")


def _tighten(line: str) -> str:
    out: list[str] = []
    quote = ""
    for char in line:
        if quote:
            out.append(char)
            quote = "" if char == quote else quote
        elif char in "'\"":
            quote = char
            out.append(char)
        elif char == " " and out and out[-1] in _TIGHT:
            continue
        else:
            if char in _TIGHT:
                while out and out[-1] == " ":
                    out.pop()
            out.append(char)
    return "".join(out)


@cache
def script_body() -> str:
    """The script without comments, indentation, blank lines or optional blanks (it travels as UTF-16 base64)."""
    text = resources.files("collectors.winrm").joinpath(SCRIPT_FILE).read_text(encoding="utf-8")
    lines = (line.strip() for line in text.splitlines())
    return "\n".join(_tighten(line) for line in lines if line and not line.startswith("#"))


def check_store(name: str) -> str:
    """Return a store name such as `LocalMachine\\My`, or raise ValueError."""
    if not STORE_NAME.fullmatch(name):
        raise ValueError(
            f"invalid certificate store {name!r}: expected LocalMachine\\<Store> or CurrentUser\\<Store>, "
            "for example LocalMachine\\My"
        )
    return name


def stores_prologue(stores: Sequence[str]) -> str:
    """The first line of the script: the stores to read, as a PowerShell array of literal strings."""
    if not stores:
        raise ValueError("at least one certificate store is needed")
    if len(stores) > MAX_STORES:
        raise ValueError(f"at most {MAX_STORES} certificate stores can be read per node")
    quoted = ",".join("'" + check_store(s).replace("'", "''") + "'" for s in stores)
    return f"$Stores=@({quoted})"


def inventory_script(stores: Sequence[str]) -> str:
    """The full script for the given stores."""
    return stores_prologue(stores) + "\n" + script_body()


def encode_command(script: str) -> str:
    """PowerShell's -EncodedCommand form: base64 of the UTF-16LE text."""
    return base64.b64encode(script.encode("utf-16-le")).decode("ascii")


def inventory_command(stores: Sequence[str]) -> tuple[str, tuple[str, ...]]:
    """The executable and arguments that run the inventory; ValueError if the line would be too long."""
    arguments = (*POWERSHELL_FLAGS, encode_command(inventory_script(stores)))
    length = len(POWERSHELL) + sum(1 + len(a) for a in arguments)
    if length > CMD_LINE_LIMIT:
        raise ValueError(f"the inventory command would be {length} characters, over cmd.exe's {CMD_LINE_LIMIT}")
    return POWERSHELL, arguments
