"""credentials-json-rotate with second_hop copy: script and file to the simulated node and back, no second hop."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path

import pytest

from daemon.app import Daemon
from daemon.remediation import remediation_context, remediation_engine
from daemon.settings import Settings, load_settings
from remediations.credentialscopy import point_agent_share
from remediations.credentialsrotate import CredentialsJsonRotate
from remediations.errors import RemediationError
from remediations.outcome import Outcome, Result
from remediations.plan import RemoteCommand
from simulator.agentshare import decrypt_value
from simulator.lab import Lab, write_config
from simulator.winrm import SimulatedFleet
from simulator.winrm.nodefile import read_node_facts, update_node_facts

REMEDIATION = CredentialsJsonRotate()


@pytest.fixture
def aos_lab(lab_copy: Lab) -> Iterator[Lab]:
    """The lab with AOS1 over WinRM; the node cannot reach the share (no delegation), as over plain NTLM."""
    folder = lab_copy.certs_dir / "AOS1"
    facts = read_node_facts(folder)["credentials_json"]
    update_node_facts(folder, credentials_json={**facts, "delegation": False})
    with SimulatedFleet.from_lab(lab_copy, names=["AOS1"]) as fleet:
        write_config(lab_copy, 0, fleet.addresses())
        yield lab_copy


def node_temp(lab: Lab) -> Path:
    folder = lab.certs_dir / "AOS1"
    return (folder / read_node_facts(folder)["temp"]["folder"]).resolve()


def settings_for(lab: Lab, second_hop: str = "copy") -> Settings:
    settings = load_settings(lab.config_file)
    settings.sources.winrm.config_template = None
    settings.sources.winrm.nodes = ["AOS1"]
    settings.sources.credentials.rotate.second_hop = second_hop  # type: ignore[assignment]
    return settings


def run(settings: Settings, now: datetime, apply: bool = True) -> Result:
    daemon = Daemon(settings, clock=lambda: now)
    try:
        daemon.collect_once()
        engine, ctx = remediation_engine(daemon, 0.2, "tester"), remediation_context(daemon)
        return engine.apply(REMEDIATION, ctx) if apply else engine.dry_run(REMEDIATION, ctx)
    finally:
        daemon.stop()


def plaintexts(lab: Lab, generations: tuple[str, ...] = ("old", "new")) -> dict[str, bytes]:
    keys = [
        (lab.cert("ServiceFabricEncryption", g).issued.cert, lab.cert("ServiceFabricEncryption", g).issued.key)
        for g in generations
    ]
    document = json.loads(lab.credentials_json.read_text(encoding="utf-8"))
    return {f"{g}.{n}": decrypt_value(v, keys) for g, values in document.items() for n, v in values.items()}  # type: ignore[arg-type]


def test_the_plan_names_every_file_with_its_hash(aos_lab: Lab, now: datetime) -> None:
    result = run(settings_for(aos_lab), now, apply=False)
    assert result.outcome is Outcome.PLANNED, result.message
    check = next(c for c in result.checks if c.name == "second hop to the agent share")
    assert check.ok and check.detail.startswith("no second hop: Configure-CredentialsJson.ps1, ConfigTemplate.xml")
    assert result.plan is not None
    (command,) = result.plan.changes
    assert isinstance(command, RemoteCommand) and command.host == "AOS1"
    assert "Infrastructure\\Configure-CredentialsJson.ps1 (SHA-256 " in command.command
    assert "Infrastructure\\ConfigTemplate.xml (SHA-256 " in command.command
    assert (
        "-ConfigurationFilePath '%TEMP%\\certmon-rotate-<random>\\Infrastructure\\ConfigTemplate.xml'"
        in command.command
    )
    assert not node_temp(aos_lab).exists() or not any(node_temp(aos_lab).iterdir())


def test_copy_rotates_without_a_second_hop_and_cleans_up(aos_lab: Lab, now: datetime) -> None:
    before = aos_lab.credentials_json.read_bytes()
    secrets = plaintexts(aos_lab)
    # The same settings with the declared delegation fail: the share denies the node (the double hop).
    denied = run(settings_for(aos_lab, "delegation"), now)
    assert denied.outcome is Outcome.FAILED and "is denied" in denied.message
    assert aos_lab.credentials_json.read_bytes() == before
    result = run(settings_for(aos_lab), now)
    assert result.outcome is Outcome.APPLIED, result.message
    assert result.cleared is True
    (backup,) = result.backups
    assert Path(backup).read_bytes() == before
    assert plaintexts(aos_lab, ("new",)) == secrets
    assert list(node_temp(aos_lab).iterdir()) == []  # the node's copy is gone
    again = run(settings_for(aos_lab), now)
    assert again.outcome is Outcome.NOTHING_TO_DO


def test_a_failing_script_leaves_the_share_untouched_and_the_node_clean(aos_lab: Lab, now: datetime) -> None:
    (aos_lab.certs_dir / "AOS1" / "ServiceFabricEncryption-old.pfx").unlink()
    before = aos_lab.credentials_json.read_bytes()
    settings = settings_for(aos_lab)
    daemon = Daemon(settings, clock=lambda: now)
    try:
        daemon.collect_once()
        # The precondition would refuse (no old key on the node); run apply directly to reach the node's failure.
        ctx = remediation_context(daemon)
        plan = REMEDIATION.plan(ctx)
        from remediations.checkpoint import Checkpoint

        checkpoint = Checkpoint(aos_lab.root / "backups")
        with pytest.raises(RemediationError, match="Configure-CredentialsJson.ps1 exited 1:.*recipient"):
            REMEDIATION.apply(ctx, plan, checkpoint)
        checkpoint.rollback()
    finally:
        daemon.stop()
    assert aos_lab.credentials_json.read_bytes() == before
    assert list(node_temp(aos_lab).iterdir()) == []


def test_a_copy_that_comes_back_wrong_is_never_written(aos_lab: Lab, now: datetime) -> None:
    # The node's ConfigTemplate names the old certificate (an outdated Infrastructure folder on this machine):
    # the script "succeeds", the copy comes back encrypted to the old certificate, and the share keeps its file.
    settings = settings_for(aos_lab)
    settings.sources.credentials.rotate.scripts_folder = aos_lab.root / "InfrastructureOld"
    (aos_lab.root / "InfrastructureOld" / "Configure-CredentialsJson.ps1").write_bytes(
        (aos_lab.root / "Infrastructure" / "Configure-CredentialsJson.ps1").read_bytes()
    )
    before = aos_lab.credentials_json.read_bytes()
    result = run(settings, now)
    assert result.outcome is Outcome.FAILED
    assert "in the rotated copy" in result.message and "are not encrypted to" in result.message
    assert aos_lab.credentials_json.read_bytes() == before
    assert list(node_temp(aos_lab).iterdir()) == []


def test_without_the_scripts_folder_copy_is_refused_naming_the_setting(aos_lab: Lab, now: datetime) -> None:
    settings = settings_for(aos_lab)
    settings.sources.configtemplate.infrastructure = None
    result = run(settings, now)
    assert result.outcome is Outcome.REFUSED
    assert "sources.credentials.rotate.scripts_folder" in result.message


def test_credssp_needs_the_credssp_transport(aos_lab: Lab, now: datetime) -> None:
    result = run(settings_for(aos_lab, "credssp"), now)
    assert result.outcome is Outcome.REFUSED
    assert "second_hop: credssp needs sources.winrm.transport: credssp (now ntlm)" in result.message


def test_point_agent_share_changes_only_the_agent_path() -> None:
    template = (
        b'<?xml version="1.0" encoding="utf-8"?>\r\n<Config>\r\n  <FileShares>\r\n'
        b'    <FileShare refName="aos">\r\n      <Path>\\\\DC1\\D365\\aos</Path>\r\n    </FileShare>\r\n'
        b'    <FileShare refName="agent">\r\n      <Name>agent</Name>\r\n      <Path>\\\\DC1\\D365\\agent</Path>\r\n'
        b"    </FileShare>\r\n  </FileShares>\r\n</Config>\r\n"
    )
    edited = point_agent_share(template, "C:\\Temp\\x&y\\agent")
    assert edited == template.replace(b"\\\\DC1\\D365\\agent", b"C:\\Temp\\x&amp;y\\agent")
    with pytest.raises(RemediationError, match='one FileShare refName="agent"'):
        point_agent_share(template.replace(b'"agent"', b'"other"'), "C:\\x")


def test_an_approved_plan_pins_the_script_that_is_copied(aos_lab: Lab, now: datetime) -> None:
    settings = settings_for(aos_lab)
    shown = run(settings, now, apply=False)
    assert shown.plan is not None
    # The script changes between the dry run the operator approved and the apply: refused, nothing copied.
    script = aos_lab.root / "Infrastructure" / "Configure-CredentialsJson.ps1"
    script.write_bytes(script.read_bytes() + b"# changed\r\n")
    before = aos_lab.credentials_json.read_bytes()
    daemon = Daemon(settings, clock=lambda: now)
    try:
        daemon.collect_once()
        result = remediation_engine(daemon, 0.2, "tester").apply(
            REMEDIATION, remediation_context(daemon), shown.plan.digest
        )
    finally:
        daemon.stop()
    assert result.outcome is Outcome.REFUSED
    assert "the plan changed since it was shown" in result.message
    assert aos_lab.credentials_json.read_bytes() == before
    assert not node_temp(aos_lab).exists() or list(node_temp(aos_lab).iterdir()) == []
