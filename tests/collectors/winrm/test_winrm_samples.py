"""certmon's WS-Management reply parsing on real WinRM traffic recorded in pypsrp's test data (tests/samples/winrm)."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import yaml

from collectors.winrm import soap

SAMPLES = Path(__file__).parent.parent.parent / "samples" / "winrm"
_MESSAGE_ID = re.compile(r"<wsa:MessageID>(uuid:[0-9A-Fa-f-]+)</wsa:MessageID>")
_ACTION = re.compile(r"<wsa:Action[^>]*>[^<]*/([A-Za-z]+)</wsa:Action>")


def _exchanges(name: str) -> list[tuple[str, soap.Request, bytes]]:
    document: Any = yaml.safe_load((SAMPLES / name).read_text(encoding="utf-8"))
    found = []
    for message in document["messages"]:
        request, response = message["request"], message["response"]
        message_id = _MESSAGE_ID.search(request)
        action = _ACTION.search(request)
        assert message_id is not None and action is not None
        found.append((action.group(1), soap.Request(message_id.group(1), request.encode()), response.encode()))
    return found


def _run(name: str) -> tuple[str, str, list[soap.Output], int]:
    shell_id = command_id = ""
    outputs: list[soap.Output] = []
    faults = 0
    for action, request, response in _exchanges(name):
        root = soap.parse_reply(response, request)
        if root.find(f"{{{soap.NS_SOAP}}}Body/{{{soap.NS_SOAP}}}Fault") is not None:
            faults += 1
        elif action == "Create":
            shell_id = soap.shell_id_of(root)
        elif action == "Command":
            command_id = soap.command_id_of(root)
        elif action == "Receive":
            outputs.append(soap.output_of(root, command_id))
    return shell_id, command_id, outputs, faults


def test_a_recorded_cmd_exe_run_parses() -> None:
    # cmd.exe /c echo hi against a real Windows host (pypsrp tests/tests_pypsrp/responses/test_winrs_standard.yml).
    shell_id, command_id, outputs, faults = _run("pypsrp-test_winrs_standard.yml")
    assert shell_id == "4283CBDC-3706-415B-88BD-B385F3E51A53"
    assert command_id == "CF84C20A-0A35-43FA-AF78-0B4711DA5F30"
    assert b"".join(o.stdout for o in outputs) == b"hi\r\n"
    assert outputs[-1].done and outputs[-1].exit_code == 0 and faults == 0


def test_recorded_operation_timeouts_between_receives() -> None:
    # A long command: Windows answers Receive with w:TimedOut faults until output arrives; the
    # chunks before and after still assemble, and the command ends with its exit code.
    _shell, _command, outputs, faults = _run("pypsrp-test_winrs_operation_timeout.yml")
    assert faults >= 1
    assert b"".join(o.stdout for o in outputs).replace(b"\r\n", b"\n") == b"hi\nhi again\n"
    assert outputs[-1].done and outputs[-1].exit_code == 0
