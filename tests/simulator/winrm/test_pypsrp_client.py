"""pypsrp (WSMan + WinRS), a WinRM client nobody here wrote, against the simulated node: NTLM, encryption, shells."""

from __future__ import annotations

from collections.abc import Iterator
from urllib.parse import urlsplit

import pytest
from pypsrp.exceptions import AuthenticationError, WSManFaultError
from pypsrp.shell import Process, SignalCode, WinRS
from pypsrp.wsman import WSMan

from collectors.winrm.output import interpret
from collectors.winrm.script import inventory_command
from simulator.lab import Lab, build_lab
from simulator.winrm import SimulatedFleet

NODE = "AOS1"


@pytest.fixture(scope="module")
def psrp_lab(tmp_path_factory: pytest.TempPathFactory) -> Lab:
    return build_lab(tmp_path_factory.mktemp("psrp") / "lab", port=0)


@pytest.fixture
def fleet(psrp_lab: Lab) -> Iterator[SimulatedFleet]:
    with SimulatedFleet.from_lab(psrp_lab, names=[NODE]) as simulated:
        yield simulated


def _wsman(lab: Lab, fleet: SimulatedFleet, password: str | None = None) -> WSMan:
    url = urlsplit(fleet[NODE].url)
    assert url.hostname is not None
    return WSMan(
        url.hostname,
        port=url.port,
        path=url.path.lstrip("/"),
        ssl=False,
        auth="ntlm",
        encryption="always",
        username=lab.winrm_username,
        password=password or lab.winrm_password,
        operation_timeout=20,
    )


def test_pypsrp_winrs_runs_the_inventory_and_certmon_parses_it(psrp_lab: Lab, fleet: SimulatedFleet) -> None:
    executable, arguments = inventory_command(["LocalMachine\\My"])
    with _wsman(psrp_lab, fleet) as wsman, WinRS(wsman) as shell:
        process = Process(shell, executable, list(arguments))
        process.invoke()
        process.signal(SignalCode.CTRL_C)
    assert process.rc == 0 and process.stderr == b""
    inventory = interpret(NODE, process.stdout, process.stderr, process.rc)
    (store,) = inventory.stores
    kinds = {c.key_kind for c in store.certificates if c.has_private_key}
    assert store.store == "LocalMachine\\My" and store.certificates and kinds == {"capi"}
    counters = fleet[NODE].counters.snapshot()
    assert counters["handshakes"] == 1 and counters["auth_failures"] == 0
    assert {"Create", "Command", "Receive", "Signal", "Delete"} <= set(counters["actions"])


def test_pypsrp_sees_cmd_exe_refuse_an_unknown_program(psrp_lab: Lab, fleet: SimulatedFleet) -> None:
    with _wsman(psrp_lab, fleet) as wsman, WinRS(wsman) as shell:
        process = Process(shell, "ipconfig", ["/all"])
        process.invoke()
        process.signal(SignalCode.CTRL_C)
    assert process.rc == 1
    assert process.stderr.startswith(b"'ipconfig' is not recognized as an internal or external command")


def test_pypsrp_with_a_wrong_password_is_refused(psrp_lab: Lab, fleet: SimulatedFleet) -> None:
    with (
        pytest.raises((AuthenticationError, WSManFaultError)),
        _wsman(psrp_lab, fleet, "wrong") as wsman,
        WinRS(wsman),
    ):
        pass
    assert fleet[NODE].counters.snapshot()["auth_failures"] >= 1


def test_pypsrp_winrs_copies_a_file_to_the_node_and_reads_it_back(psrp_lab: Lab, fleet: SimulatedFleet) -> None:
    # credentials-json-rotate's copy mode, driven by a client nobody here wrote: the same command lines.
    from collectors.winrm import nodefiles

    def run(script: str) -> bytes:
        executable, arguments = nodefiles.command_line(script)
        process = Process(shell, executable, list(arguments))
        process.invoke()
        process.signal(SignalCode.CTRL_C)
        assert process.rc == 0 and process.stderr == b"", process.stderr
        return bytes(process.stdout)

    data = bytes(range(256)) * 7  # two chunks
    with _wsman(psrp_lab, fleet) as wsman, WinRS(wsman) as shell:
        folder = run(nodefiles.temp_folder_script("certmon-psrp")).decode().strip()
        path = f"{folder}\\f.bin"
        run(nodefiles.write_chunk_script(path, data[: nodefiles.UPLOAD_CHUNK], first=True))
        run(nodefiles.write_chunk_script(path, data[nodefiles.UPLOAD_CHUNK :], first=False))
        length, digest = run(nodefiles.hash_script(path)).decode().split()
        back = run(nodefiles.read_chunk_script(path, 0, len(data)))
        run(nodefiles.remove_folder_script(folder))
    import base64
    import hashlib

    assert folder.endswith("\\AppData\\Local\\Temp\\certmon-psrp")
    assert (int(length), digest) == (len(data), hashlib.sha256(data).hexdigest().upper())
    assert base64.b64decode(back.strip()) == data
