"""Operator-approved commands over real pywinrm: Configure-CredentialsJson.ps1 -Action Rotate on a simulated AOS node."""

from __future__ import annotations

import base64
import json
from collections.abc import Iterator

import pytest

from collectors.base import Deadline
from collectors.winrm import WinRMCollector, WinRMOptions
from collectors.winrm.command import ApprovedCommand, check_windows_path, quote
from simulator.agentshare import decrypt_value
from simulator.lab import Lab
from simulator.labdata import CONFIGURATION_FILE, CREDENTIALS_SCRIPT
from simulator.winrm import SimulatedFleet
from simulator.winrm.powershell import decode_encoded_command

ROTATE = ApprovedCommand(CREDENTIALS_SCRIPT, (("ConfigurationFilePath", CONFIGURATION_FILE), ("Action", "Rotate")))


def test_the_command_as_the_operator_reads_it() -> None:
    assert ROTATE.text() == (
        "& 'C:\\D365\\Infrastructure\\Configure-CredentialsJson.ps1' "
        "-ConfigurationFilePath 'C:\\D365\\Infrastructure\\ConfigTemplate.xml' -Action 'Rotate'"
    )
    executable, arguments = ROTATE.command_line()
    assert executable == "powershell.exe" and arguments[:-1] == (
        "-NoLogo",
        "-NoProfile",
        "-NonInteractive",
        "-EncodedCommand",
    )
    script = decode_encoded_command(arguments[-1])
    assert script == ROTATE.script_text()
    assert script.splitlines()[-3:] == [
        "Set-Location -LiteralPath 'C:\\D365\\Infrastructure'",
        ROTATE.text(),
        "exit 0",
    ]


def test_values_are_literals() -> None:
    assert quote("it's $(Get-Secret); `whoami`") == "'it''s $(Get-Secret); `whoami`'"
    with pytest.raises(ValueError, match="control characters"):
        quote("line\nbreak")


@pytest.mark.parametrize(
    "path",
    ["Configure-CredentialsJson.ps1", ".\\Configure.ps1", "C:/D365/x.ps1", "C:\\D365\\..\\x.ps1", "C:\\a|b\\x.ps1"],
)
def test_only_absolute_windows_paths(path: str) -> None:
    with pytest.raises(ValueError):
        check_windows_path(path, ".ps1")
    assert check_windows_path("\\\\DC1\\scripts\\Infrastructure\\x.ps1", ".ps1")


def test_parameter_names_are_checked() -> None:
    with pytest.raises(ValueError, match="invalid parameter name"):
        ApprovedCommand(CREDENTIALS_SCRIPT, (("Action; Remove-Item", "x"),))


@pytest.fixture
def aos(lab_copy: Lab) -> Iterator[tuple[Lab, WinRMCollector]]:
    """AOS1 of a private lab copy, and a collector that reaches it with the lab's account."""
    with SimulatedFleet.from_lab(lab_copy, names=["AOS1"]) as fleet:
        options = WinRMOptions(username=lab_copy.winrm_username, password=lab_copy.winrm_password)
        collector = WinRMCollector(options, nodes=["AOS1"], addresses=fleet.addresses())
        try:
            yield lab_copy, collector
        finally:
            collector.close()


def plaintexts(lab: Lab) -> dict[str, bytes]:
    keys = [
        (lab.cert("ServiceFabricEncryption", g).issued.cert, lab.cert("ServiceFabricEncryption", g).issued.key)
        for g in ("old", "new")
    ]
    document = json.loads(lab.credentials_json.read_text(encoding="utf-8"))
    return {f"{g}.{n}": decrypt_value(v, keys) for g, values in document.items() for n, v in values.items()}  # type: ignore[arg-type]


def test_rotate_reencrypts_every_value_to_the_new_certificate(aos: tuple[Lab, WinRMCollector]) -> None:
    lab, collector = aos
    before = plaintexts(lab)
    outcome = collector.run_approved("AOS1", ROTATE, Deadline.after(30))
    assert outcome.ok, outcome
    assert "Re-encrypted 5 values" in outcome.output
    new = lab.cert("ServiceFabricEncryption", "new").issued
    document = json.loads(lab.credentials_json.read_text(encoding="utf-8"))
    for values in document.values():
        for value in values.values():
            assert decrypt_value(value, [(new.cert, new.key)])  # type: ignore[list-item]
    assert plaintexts(lab) == before
    # The inventory runs as before, on its own session.
    assert collector.collect("AOS1", Deadline.after(30)).certificates


def test_other_actions_and_scripts_are_not_run(aos: tuple[Lab, WinRMCollector]) -> None:
    lab, collector = aos
    before = lab.credentials_json.read_bytes()
    decrypt = ApprovedCommand(
        CREDENTIALS_SCRIPT, (("ConfigurationFilePath", CONFIGURATION_FILE), ("Action", "Decrypt"))
    )
    outcome = collector.run_approved("AOS1", decrypt, Deadline.after(30))
    assert outcome.exit_code == 1 and "runs -Action Rotate only" in " ".join(outcome.errors)
    elsewhere = ApprovedCommand("C:\\Temp\\Configure-CredentialsJson.ps1", ROTATE.parameters)
    outcome = collector.run_approved("AOS1", elsewhere, Deadline.after(30))
    assert outcome.exit_code == 1 and "runs only the inventory script" in " ".join(outcome.errors)
    assert lab.credentials_json.read_bytes() == before


def test_without_the_old_private_key_nothing_is_written(aos: tuple[Lab, WinRMCollector]) -> None:
    lab, collector = aos
    (lab.certs_dir / "AOS1" / "ServiceFabricEncryption-old.pfx").unlink()
    before = lab.credentials_json.read_bytes()
    outcome = collector.run_approved("AOS1", ROTATE, Deadline.after(30))
    assert outcome.exit_code == 1
    assert "does not contain the specified recipient" in " ".join(outcome.errors)
    assert lab.credentials_json.read_bytes() == before


def test_a_missing_configuration_file_fails_like_powershell(aos: tuple[Lab, WinRMCollector]) -> None:
    _, collector = aos
    missing = ApprovedCommand(
        CREDENTIALS_SCRIPT, (("ConfigurationFilePath", "D:\\Nowhere\\ConfigTemplate.xml"), ("Action", "Rotate"))
    )
    outcome = collector.run_approved("AOS1", missing, Deadline.after(30))
    assert outcome.exit_code == 1 and "Cannot find path 'D:\\Nowhere\\ConfigTemplate.xml'" in " ".join(outcome.errors)


def test_encoded_values_survive_the_trip() -> None:
    command = ApprovedCommand(CREDENTIALS_SCRIPT, (("ConfigurationFilePath", "C:\\O'Brien's\\ConfigTemplate.xml"),))
    _, arguments = command.command_line()
    text = base64.b64decode(arguments[-1]).decode("utf-16-le")
    assert "-ConfigurationFilePath 'C:\\O''Brien''s\\ConfigTemplate.xml'" in text
