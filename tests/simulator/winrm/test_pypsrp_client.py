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
