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
    assert "$ProgressPreference='SilentlyContinue'" in body  # progress records would go to stderr
    assert "SuperSocketNetLib" in body


def test_regression_key_kind_is_read_from_the_key_provider_information() -> None:
    # .NET Framework's GetRSAPrivateKey() opens CAPI keys through CNG and returns RSACng for them,
    # so the wrapper type called healthy CAPI keys CNG. The script reads CERT_KEY_PROV_INFO_PROP_ID (2)
    # and reports dwProvType (third field, after two pointers) and pwszProvName (second field).
    body = script_body()
    assert "GetRSAPrivateKey" not in body and "RSACng" not in body and "ECDsaCng" not in body
    assert 'DllImport("crypt32.dll")' in body and "CertGetCertificateContextProperty($C.Handle,2," in body
    assert "ReadInt32($B,2*$T)" in body and "ReadIntPtr($B,$T)" in body
    assert "t=$J[0];p=$J[1]" in body


def test_key_file_acl_is_read_in_the_same_script() -> None:
    # Private-key access (issue 16): the key file of each certificate, found from CRYPT_KEY_PROV_INFO's
    # container name (first field), and every access rule of it, by SID, with rights and allow/deny.
    body = script_body()
    assert "PtrToStringUni($M::ReadIntPtr($B,0))" in body
    assert "RSA\\MachineKeys\\'+$C.PrivateKey.CspKeyContainerInfo.UniqueKeyContainerName" in body
    assert (
        "[Security.Cryptography.CngKey]::Open($K[2],[Security.Cryptography.CngProvider]$K[1],'MachineKey').UniqueName"
        in body
    )
    assert "GetAccessRules(1,1,[Security.Principal.SecurityIdentifier])" in body
    assert "[int]$r.FileSystemRights,[int]$r.AccessControlType" in body
    assert "-Depth 9" in body  # item.k.a[rule] nests 8 levels below the root; deeper would be stringified


def test_local_groups_named_by_key_rules_are_listed_in_the_same_script() -> None:
    # Group membership (issue 16): every identity of a key rule is noted, and each one that is a local group
    # is listed with Get-LocalGroupMember; one that is not (or that fails) is left out, never guessed.
    body = script_body()
    assert "$G[$i.Value]=1" in body
    assert "g=@{}" in body
    assert (
        "foreach($s in $G.Keys){try{$R.g[$s]=@(Get-LocalGroupMember -SID $s|%{,@($_.SID.Value,$_.Name,"
        "$_.ObjectClass)})}catch{}}" in body
    )


def test_tightening_keeps_string_literals() -> None:
    body = script_body()
    assert "'ReadOnly, OpenExistingOnly'" in body
    assert "'certmon-inventory: '" in body
    assert '"$Q\\Instance Names\\SQL"' in body


def test_longest_store_names_still_fit_cmd_exe() -> None:
    stores = [f"CurrentUser\\{'S' * 39}{i}" for i in range(MAX_STORES)]
    executable, arguments = inventory_command(stores)
    assert len(executable) + sum(1 + len(a) for a in arguments) <= CMD_LINE_LIMIT


def test_command_is_powershell_with_the_encoded_script() -> None:
    executable, arguments = inventory_command(["LocalMachine\\My"])
    assert executable == "powershell.exe"
    assert arguments[:-1] == ("-NoLogo", "-NoProfile", "-NonInteractive", "-EncodedCommand")
    decoded = base64.b64decode(arguments[-1]).decode("utf-16-le")
    assert decoded == inventory_script(["LocalMachine\\My"])
    assert decoded.startswith("$Stores=@('LocalMachine\\My')\n")


def test_longest_allowed_command_fits_cmd_exe() -> None:
    stores = [f"LocalMachine\\{'S' * 38}{i}" for i in range(MAX_STORES)]
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
