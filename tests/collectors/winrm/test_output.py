"""Reading what the inventory script printed: its JSON, CLIXML on stderr, exit codes."""

from __future__ import annotations

import base64
import json
from datetime import UTC, datetime
from typing import Any

import pytest

from collectors.errors import CollectorError, Reason
from collectors.winrm.output import interpret, parse_inventory, read_stderr
from simulator.pki import days, make_certificate

NOW = datetime(2026, 11, 27, 12, 0, 0, tzinfo=UTC)
DER = make_certificate("node.contoso.lab", not_before=days(NOW, -1), not_after=days(NOW, 30)).der
B64 = base64.b64encode(DER).decode()
CAPI = "Microsoft Enhanced RSA and AES Cryptographic Provider"


def document(**changes: Any) -> dict[str, Any]:
    """A well-formed inventory document."""
    doc: dict[str, Any] = {
        "v": 2,
        "stores": [{"s": "LocalMachine\\My", "c": [{"d": B64, "h": True, "t": 24, "p": CAPI}]}],
        "sql": [{"i": "MSSQLSERVER", "t": "ab cd"}],
        "n": 1,
    }
    doc.update(changes)
    return doc


def dumps(doc: Any) -> bytes:
    """As the script prints it: one line, CRLF."""
    return json.dumps(doc, separators=(",", ":")).encode() + b"\r\n"


def test_parses_the_inventory() -> None:
    inventory = parse_inventory("AOS1", dumps(document()))
    [store] = inventory.stores
    assert store.store == "LocalMachine\\My" and store.error == ""
    [cert] = store.certificates
    assert cert.der == DER and cert.has_private_key and cert.key_kind == "capi"
    assert [(s.instance, s.thumbprint) for s in inventory.sql] == [("MSSQLSERVER", "ab cd")]


@pytest.mark.parametrize(
    ("provider_type", "provider", "kind"),
    [
        # dwProvType of CRYPT_KEY_PROV_INFO decides, whatever the name says.
        (24, CAPI, "capi"),
        (1, "Microsoft Strong Cryptographic Provider", "capi"),
        (12, "Microsoft RSA SChannel Cryptographic Provider", "capi"),
        (0, "Microsoft Software Key Storage Provider", "cng"),
        (0, "Microsoft Platform Crypto Provider", "cng"),
        (0, "Contoso HSM Key Storage Provider", "cng"),
        (1, "Contoso HSM Cryptographic Provider", "capi"),
        (-1, "no CERT_KEY_PROV_INFO property", "unknown"),
    ],
)
def test_key_kind_comes_from_the_provider_type(provider_type: int, provider: str, kind: str) -> None:
    entry = {"d": B64, "h": True, "t": provider_type, "p": provider}
    [cert] = (
        parse_inventory("AOS1", dumps(document(stores=[{"s": "LocalMachine\\My", "c": [entry]}])))
        .stores[0]
        .certificates
    )
    assert (cert.key_kind, cert.provider, cert.provider_type) == (kind, provider, provider_type)


def test_a_certificate_without_a_private_key_has_no_key_kind() -> None:
    entry = {"d": B64, "h": False, "t": -1, "p": ""}
    [cert] = (
        parse_inventory("AOS1", dumps(document(stores=[{"s": "LocalMachine\\My", "c": [entry]}])))
        .stores[0]
        .certificates
    )
    assert cert.key_kind == "" and not cert.has_private_key


def test_accepts_what_windows_powershell_writes() -> None:
    # ConvertTo-Json in PowerShell 5.1: hashtable keys in any order, <>&' escaped as \u00XX.
    text = (
        '{"sql":[],"n":1,"v":2,"stores":[{"c":[{"p":"","t":-1,"h":false,"d":"' + B64 + '"}],'
        '"s":"LocalMachine\\\\Root","e":"caf\\u00e9 \\u003cok\\u003e"}]}'
    )
    inventory = parse_inventory("AOS1", b"\xef\xbb\xbf" + text.encode() + b"\r\n")
    assert inventory.stores[0].error == "café <ok>"
    assert inventory.stores[0].certificates[0].has_private_key is False


def test_a_banner_before_the_json_line_is_ignored() -> None:
    assert parse_inventory("AOS1", b"Welcome to AOS1\r\n" + dumps(document())).stores


def test_the_usual_single_line_reads_like_the_line_picked_among_others() -> None:
    """The one-line output is parsed in place; it must read exactly as when a banner makes it one line of several."""
    alone = parse_inventory("AOS1", b" \t" + dumps(document()))
    assert alone == parse_inventory("AOS1", b"Welcome to AOS1\r\n" + dumps(document()))
    # Still one JSON line only: the same document printed over several lines is refused as before.
    pretty = json.dumps(document(), indent=1).encode()
    with pytest.raises(CollectorError, match="truncated"):
        parse_inventory("AOS1", pretty)


@pytest.mark.parametrize(
    ("stdout", "text"),
    [
        (b"", "printed nothing"),
        (b"\xff\xfe\x00garbage", "not text"),
        (dumps(document())[:200], "truncated"),
        (b"{not json}", "invalid JSON"),
        (dumps([1, 2]), "JSON list"),
        (dumps(document(v=1)), "version 1"),
        (dumps(document(n=5)), "announces 5 certificates but holds 1"),
        (dumps(document(stores=[{"s": "LocalMachine\\My"}])), "stores[0].c"),
        (
            dumps(document(stores=[{"s": "LocalMachine\\My", "c": [{"d": "%%%", "h": True, "t": -1, "p": ""}]}])),
            "base64",
        ),
        (
            dumps(document(stores=[{"s": "LocalMachine\\My", "c": [{"d": B64, "h": 1, "t": -1, "p": ""}]}])),
            "wrong type",
        ),
        (dumps(document(stores=[{"s": "LocalMachine\\My", "c": [{"d": B64, "h": True, "t": -2, "p": ""}]}])), ".t is"),
        (
            dumps(document(stores=[{"s": "LocalMachine\\My", "c": [{"d": B64, "h": True, "t": "0", "p": ""}]}])),
            ".t has",
        ),
        (dumps(document(sql=[{"i": "X"}])), "sql[0].t"),
        (b"[" * 100000 + b"]" * 100000, "nested too deeply"),
    ],
)
def test_bad_output(stdout: bytes, text: str) -> None:
    with pytest.raises(CollectorError) as caught:
        parse_inventory("AOS1", stdout)
    assert caught.value.reason is Reason.BAD_OUTPUT
    assert text in caught.value.message
    assert str(caught.value).startswith("AOS1:")


PROGRESS = (
    b'#< CLIXML\r\n<Objs Version="1.1.0.1" xmlns="http://schemas.microsoft.com/powershell/2004/04">'
    b'<Obj S="progress" RefId="0"><TN RefId="0"><T>System.Management.Automation.PSCustomObject</T></TN>'
    b'<MS><I64 N="SourceId">1</I64><PR N="Record"><AV>Preparing modules for first use.</AV></PR></MS></Obj></Objs>'
)
ERROR = (
    b'#< CLIXML\r\n<Objs Version="1.1.0.1" xmlns="http://schemas.microsoft.com/powershell/2004/04">'
    b'<S S="Error">Access is denied._x000D__x000A_</S><S S="Error">At line:1 char:1_x000D__x000A_</S></Objs>'
)


def test_progress_records_are_noise() -> None:
    stderr = read_stderr(PROGRESS)
    assert stderr.errors == () and stderr.progress_records == 1
    assert interpret("AOS1", dumps(document()), PROGRESS, 0).warnings == ()


def test_error_records_are_decoded() -> None:
    assert read_stderr(ERROR).errors == ("Access is denied.", "At line:1 char:1")


def test_failed_run_is_a_script_error_with_its_message() -> None:
    with pytest.raises(CollectorError) as caught:
        interpret("AOS1", b"", ERROR, 1)
    assert caught.value.reason is Reason.SCRIPT_ERROR
    assert "exit code 1" in caught.value.message and "Access is denied." in caught.value.message


def test_cmd_error_text_is_kept() -> None:
    stderr = (
        b"'powershell.exe' is not recognized as an internal or external command,\r\noperable program or batch file.\r\n"
    )
    with pytest.raises(CollectorError) as caught:
        interpret("AOS1", b"", stderr, 9009)
    assert "is not recognized" in caught.value.message


def test_errors_of_a_successful_run_become_warnings() -> None:
    inventory = interpret("AOS1", dumps(document()), ERROR, 0)
    assert inventory.warnings == ("Access is denied.", "At line:1 char:1")


def test_malformed_clixml_is_reported_not_raised() -> None:
    stderr = read_stderr(b"#< CLIXML\r\n<Objs><S S='Error'>unterminated</Objs>")
    assert stderr.errors and "unterminated" in stderr.errors[0]


def test_local_groups_are_parsed_and_bounded() -> None:
    members = [
        ["S-1-5-21-1-2-3-500", "AOS1\\Administrator", "User"],
        ["S-1-5-21-9-512", "CONTOSO\\Domain Admins", "Group"],
    ]
    inventory = parse_inventory("AOS1", dumps(document(g={"S-1-5-32-544": members})))
    (group,) = inventory.groups
    assert group.sid == "S-1-5-32-544"
    assert [(m.name, m.is_group) for m in group.members] == [
        ("AOS1\\Administrator", False),
        ("CONTOSO\\Domain Admins", True),
    ]
    assert parse_inventory("AOS1", dumps(document())).groups == (), "output without g: no membership known"
    for bad, text in (
        ([], "$.g is not an object"),
        ({"S-1-5-32-544": [["S-1", "x"]]}, "is not [SID, name, ObjectClass]"),
        ({"S-1-5-32-544": [["S-1", "x", 1]]}, "is not a string"),
        ({f"S-1-5-21-{i}": [] for i in range(65)}, "more than 64"),
        ({"S-1-5-32-544": [["S-1", "x", "User"]] * 1001}, "at most 1000 members"),
    ):
        with pytest.raises(CollectorError, match=text.replace("$", r"\$").replace("[", r"\[")) as caught:
            parse_inventory("AOS1", dumps(document(g=bad)))
        assert caught.value.reason is Reason.BAD_OUTPUT
