"""The inventory script: compact, parameterised safely, and short enough for cmd.exe."""

from __future__ import annotations

import base64

import pytest

from collectors.winrm.script import (
    CMD_LINE_LIMIT,
    MAX_STORES,
    inventory_command,
    inventory_script,
    script_body,
    stores_prologue,
)


def test_body_has_no_comments_or_indentation() -> None:
    body = script_body()
    assert not any(line.startswith(("#", " ", "\t")) for line in body.splitlines())
    assert "$ProgressPreference = 'SilentlyContinue'" in body  # progress records would go to stderr
    assert "SuperSocketNetLib" in body and "GetRSAPrivateKey" in body


def test_command_is_powershell_with_the_encoded_script() -> None:
    executable, arguments = inventory_command(["LocalMachine\\My"])
    assert executable == "powershell.exe"
    assert arguments[:-1] == ("-NoLogo", "-NoProfile", "-NonInteractive", "-EncodedCommand")
    decoded = base64.b64decode(arguments[-1]).decode("utf-16-le")
    assert decoded == inventory_script(["LocalMachine\\My"])
    assert decoded.startswith("$Stores=@('LocalMachine\\My')\n")


def test_longest_allowed_command_fits_cmd_exe() -> None:
    stores = [f"LocalMachine\\{'S' * 60}{i}" for i in range(MAX_STORES)]
    executable, arguments = inventory_command(stores)
    assert len(executable) + sum(1 + len(a) for a in arguments) <= CMD_LINE_LIMIT


@pytest.mark.parametrize(
    "store",
    [
        "My",
        "LocalMachine\\My'); Remove-Item C:\\ -Recurse; ('",
        "LocalMachine\\$(whoami)",
        "Machine\\My",
        "LocalMachine\\",
        "LocalMachine\\My\\Sub",
    ],
)
def test_store_names_cannot_inject_code(store: str) -> None:
    with pytest.raises(ValueError, match="invalid certificate store"):
        stores_prologue([store])


def test_store_list_limits() -> None:
    with pytest.raises(ValueError, match="at least one"):
        stores_prologue([])
    with pytest.raises(ValueError, match="at most"):
        stores_prologue([f"LocalMachine\\S{i}" for i in range(MAX_STORES + 1)])
    assert stores_prologue(["LocalMachine\\My", "CurrentUser\\Trusted People"]) == (
        "$Stores=@('LocalMachine\\My','CurrentUser\\Trusted People')"
    )
