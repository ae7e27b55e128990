"""The simulated node as unmodified pywinrm sees it: NTLM, encryption, shells, faults, foreign commands."""

from __future__ import annotations

import base64
import select
import socket
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests
import winrm
from winrm.exceptions import InvalidCredentialsError, WinRMTransportError, WSManFaultError
from winrm.protocol import Protocol

from collectors.winrm.script import inventory_command
from simulator.lab import Lab, build_lab
from simulator.winrm import SimulatedFleet
from simulator.winrm.powershell import INVENTORY_SCRIPT_SHA256, NodeFolder, PowerShellHost

NODE = "AOS1"
# Plain pywinrm sessions warn that they read REQUESTS_CA_BUNDLE; these tests use plain HTTP.
pytestmark = pytest.mark.filterwarnings("ignore:'pywinrm' will use an environment:DeprecationWarning")


@pytest.fixture(scope="module")
def sim_lab(tmp_path_factory: pytest.TempPathFactory) -> Lab:
    """A lab for this module."""
    return build_lab(tmp_path_factory.mktemp("sim") / "lab", port=0)


@pytest.fixture
def fleet(sim_lab: Lab) -> Iterator[SimulatedFleet]:
    """AOS1 and SQL1 on loopback."""
    with SimulatedFleet.from_lab(sim_lab, names=[NODE, "SQL1"]) as simulated:
        yield simulated


def session(lab: Lab, fleet: SimulatedFleet, password: str | None = None) -> winrm.Session:
    """A plain pywinrm session with NTLM and message encryption."""
    return winrm.Session(
        fleet[NODE].url,
        auth=(lab.winrm_username, password or lab.winrm_password),
        transport="ntlm",
        message_encryption="always",
    )


def test_pywinrm_run_ps_of_a_foreign_script_gets_an_error(sim_lab: Lab, fleet: SimulatedFleet) -> None:
    result = session(sim_lab, fleet).run_ps("Get-ChildItem Cert:\\LocalMachine\\My")
    assert result.status_code == 1
    assert b"not recognized" in result.std_err
    counters = fleet[NODE].counters.snapshot()
    # What certmon avoids: pywinrm's run_ps logs on and opens and deletes a shell on every call.
    assert counters["requests"] == 8 and counters["handshakes"] == 1
    assert counters["actions"] == {"Create": 1, "Command": 1, "Receive": 1, "Signal": 1, "Delete": 1}
    assert counters["encrypted"] == 5
    assert fleet[NODE].wsman.shells == {}


def test_cmd_of_an_unknown_program_fails_like_cmd_exe(sim_lab: Lab, fleet: SimulatedFleet) -> None:
    result = session(sim_lab, fleet).run_cmd("ipconfig", ["/all"])
    assert result.status_code == 1
    assert result.std_err.startswith(b"'ipconfig' is not recognized as an internal or external command")


def test_pywinrm_runs_the_inventory_script(sim_lab: Lab, fleet: SimulatedFleet) -> None:
    executable, arguments = inventory_command(["LocalMachine\\My"])
    result = session(sim_lab, fleet).run_cmd(executable, arguments)
    assert result.status_code == 0 and result.std_err == b""
    assert result.std_out.startswith(b'{"v":2,"stores":[{"s":"LocalMachine\\\\My"')


def test_a_changed_script_is_not_run(sim_lab: Lab, fleet: SimulatedFleet) -> None:
    executable, arguments = inventory_command(["LocalMachine\\My"])
    script = base64.b64decode(arguments[-1]).decode("utf-16-le") + "\nRemove-Item C:\\Windows"
    tampered = base64.b64encode(script.encode("utf-16-le")).decode()
    result = session(sim_lab, fleet).run_cmd(executable, [*arguments[:-1], tampered])
    assert result.status_code == 1 and b"CLIXML" in result.std_err


def test_simulator_emulates_the_current_inventory_script(tmp_path: Path) -> None:
    host = PowerShellHost(NodeFolder(tmp_path, None))
    assert host.script_supported, (
        "collectors/winrm/inventory.ps1 changed: update simulator/winrm/powershell.py to answer what the new "
        f"script prints, then INVENTORY_SCRIPT_SHA256 (now {INVENTORY_SCRIPT_SHA256})"
    )


def test_wrong_password_is_rejected(sim_lab: Lab, fleet: SimulatedFleet) -> None:
    with pytest.raises(InvalidCredentialsError):
        session(sim_lab, fleet, password="wrong-password").run_cmd("ipconfig")
    assert fleet[NODE].counters.snapshot()["auth_failures"] == 1


def test_wrong_password_knob_rejects_the_right_password(sim_lab: Lab, fleet: SimulatedFleet) -> None:
    fleet[NODE].configure(wrong_password=True)
    with pytest.raises(InvalidCredentialsError):
        session(sim_lab, fleet).run_cmd("ipconfig")


def test_replies_relate_to_the_request(sim_lab: Lab, fleet: SimulatedFleet) -> None:
    protocol = Protocol(
        fleet[NODE].url, transport="ntlm", username=sim_lab.winrm_username, password=sim_lab.winrm_password
    )
    shell_id = protocol.open_shell()
    # pywinrm checks RelatesTo against its MessageID on Delete (and asserts on a mismatch).
    protocol.close_shell(shell_id)
    with pytest.raises(WSManFaultError) as caught:
        protocol.close_shell(shell_id)
    assert caught.value.wsman_fault_code == 2150858843
    assert caught.value.code == 500


def test_soap_fault_knob(sim_lab: Lab, fleet: SimulatedFleet) -> None:
    fleet[NODE].configure(soap_fault="Access is denied.")
    with pytest.raises(WSManFaultError) as caught:
        session(sim_lab, fleet).run_cmd("ipconfig")
    assert caught.value.reason == "Access is denied."
    assert caught.value.wsman_fault_code == 2147942405


def test_operation_timeout_fault(sim_lab: Lab, fleet: SimulatedFleet) -> None:
    fleet[NODE].configure(operation_timeouts=1)
    protocol = Protocol(
        fleet[NODE].url,
        transport="ntlm",
        username=sim_lab.winrm_username,
        password=sim_lab.winrm_password,
        operation_timeout_sec=1,
        read_timeout_sec=5,
    )
    shell_id = protocol.open_shell()
    command_id = protocol.run_command(shell_id, "ipconfig")
    with pytest.raises(winrm.exceptions.WinRMOperationTimeoutError):
        protocol.get_command_output_raw(shell_id, command_id)
    _, stderr, code, done = protocol.get_command_output_raw(shell_id, command_id)
    assert done and code == 1 and b"not recognized" in stderr


def test_plain_soap_over_http_is_refused(sim_lab: Lab, fleet: SimulatedFleet) -> None:
    protocol = Protocol(
        fleet[NODE].url,
        transport="ntlm",
        username=sim_lab.winrm_username,
        password=sim_lab.winrm_password,
        message_encryption="never",
    )
    with pytest.raises(WinRMTransportError) as caught:
        protocol.open_shell()
    assert caught.value.code == 400


def test_basic_is_not_offered_over_http(sim_lab: Lab, fleet: SimulatedFleet) -> None:
    reply = requests.post(
        fleet[NODE].url, data=b"<x/>", auth=(sim_lab.winrm_username, sim_lab.winrm_password), timeout=5
    )
    assert reply.status_code == 401
    assert reply.headers["WWW-Authenticate"] == "Negotiate"


def test_refuse_knob_closes_the_port_and_reopens_it(sim_lab: Lab, fleet: SimulatedFleet) -> None:
    url = fleet[NODE].url
    fleet[NODE].configure(refuse=True)
    with pytest.raises(requests.ConnectionError):
        requests.post(url, data=b"", timeout=5)
    fleet[NODE].configure(refuse=False)
    assert requests.post(url, data=b"", timeout=5).status_code == 401


def test_not_wsman(sim_lab: Lab, fleet: SimulatedFleet) -> None:
    base = fleet[NODE].url.removesuffix("/wsman")
    assert requests.post(f"{base}/other", data=b"", timeout=5).status_code == 404
    assert requests.get(fleet[NODE].url, timeout=5).status_code == 405


def test_shell_quota(sim_lab: Lab, fleet: SimulatedFleet) -> None:
    fleet[NODE].configure(max_shells_per_user=2)
    protocol = Protocol(
        fleet[NODE].url, transport="ntlm", username=sim_lab.winrm_username, password=sim_lab.winrm_password
    )
    protocol.open_shell()
    protocol.open_shell()
    with pytest.raises(WSManFaultError) as caught:
        protocol.open_shell()
    assert caught.value.wsman_fault_code == 2150859173
    assert "maximum number of 2 concurrent shells" in caught.value.reason


def test_unknown_fault_knob_is_an_error(fleet: SimulatedFleet) -> None:
    with pytest.raises(TypeError, match="unknown fault knob"):
        fleet[NODE].configure(lag=1)
    with pytest.raises(ValueError, match="stdout"):
        fleet[NODE].configure(stdout="noise")


def test_message_ids_are_fresh(sim_lab: Lab, fleet: SimulatedFleet) -> None:
    protocol = Protocol(
        fleet[NODE].url, transport="ntlm", username=sim_lab.winrm_username, password=sim_lab.winrm_password
    )
    header = protocol.build_wsman_header(
        "http://schemas.xmlsoap.org/ws/2004/09/transfer/Create",
        "http://schemas.microsoft.com/wbem/wsman/1/windows/shell/cmd",
        message_id=uuid.UUID(int=7),
    )
    assert header["env:Header"]["a:MessageID"] == f"uuid:{uuid.UUID(int=7)}"


def test_idle_connections_are_closed_by_the_server(sim_lab: Lab, fleet: SimulatedFleet) -> None:
    fleet[NODE].configure(idle_connection_timeout=0.05)
    host, port = fleet[NODE].address.rsplit(":", 1)
    with socket.create_connection((host, int(port)), timeout=5) as client:
        client.sendall(b"POST /wsman HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n")
        reply = client.recv(65536)
        assert reply.startswith(b"HTTP/1.1 401")
        # Block until the server closes the idle connection (EOF), not for a fixed time.
        ready, _, _ = select.select([client], [], [], 5)
        assert ready and client.recv(1) == b""
