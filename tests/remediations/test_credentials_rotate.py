"""credentials-json-rotate: Configure-CredentialsJson.ps1 -Action Rotate on a simulated AOS node over WinRM."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path

import pytest

from daemon.app import Daemon
from daemon.remediation import remediation_context, remediation_engine
from daemon.settings import load_settings
from remediations.credentialsrotate import CredentialsJsonRotate
from remediations.outcome import Outcome, Result
from remediations.plan import RemoteCommand
from simulator.agentshare import decrypt_value
from simulator.lab import Lab, write_config
from simulator.winrm import SimulatedFleet
from simulator.winrm.nodefile import read_node_facts, update_node_facts

REMEDIATION = CredentialsJsonRotate()
COMMAND = (
    "& 'C:\\D365\\Infrastructure\\Configure-CredentialsJson.ps1' "
    "-ConfigurationFilePath 'C:\\D365\\Infrastructure\\ConfigTemplate.xml' -Action 'Rotate'"
)


@pytest.fixture
def aos_lab(lab_copy: Lab) -> Iterator[Lab]:
    """The lab with AOS1 listening over WinRM and read by the winrm source."""
    with SimulatedFleet.from_lab(lab_copy, names=["AOS1"]) as fleet:
        write_config(lab_copy, 0, fleet.addresses())
        yield lab_copy


def run(lab: Lab, now: datetime, apply: bool = True) -> Result:
    settings = load_settings(lab.config_file)
    settings.sources.winrm.config_template = None
    settings.sources.winrm.nodes = ["AOS1"]
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


def test_dry_run_shows_the_exact_command(aos_lab: Lab, now: datetime) -> None:
    before = aos_lab.credentials_json.read_bytes()
    result = run(aos_lab, now, apply=False)
    assert result.outcome is Outcome.PLANNED, result.message
    assert [c.name for c in result.checks if c.ok] == [
        "Credentials.json configured",
        "AOS node configured",
        "WinRM configured",
        "second hop to the agent share",
        "new encipherment certificate named",
        "Credentials.json collected",
        "node holds the certificates",
    ]
    assert result.plan is not None
    (command,) = result.plan.changes
    assert isinstance(command, RemoteCommand) and (command.host, command.command) == ("AOS1", COMMAND)
    assert "AosPrincipal.AccountPassword, AosSqlAuth.SqlPwd, AosDWAuth.DWPwd" in result.plan.follow_up[0]
    assert [f.rule for f in result.findings_before] == ["credentials-json-on-old-cert"]
    assert aos_lab.credentials_json.read_bytes() == before


def test_apply_reencrypts_to_the_new_certificate_then_nothing_to_do(aos_lab: Lab, now: datetime) -> None:
    before = aos_lab.credentials_json.read_bytes()
    secrets = plaintexts(aos_lab)
    result = run(aos_lab, now)
    assert result.outcome is Outcome.APPLIED, result.message
    assert result.cleared is True and "re-collected credentials: the findings cleared" in result.message
    (backup,) = result.backups
    assert Path(backup).read_bytes() == before
    # Every value opens with the new key alone, and says what it said before.
    assert plaintexts(aos_lab, ("new",)) == secrets
    again = run(aos_lab, now)
    assert again.outcome is Outcome.NOTHING_TO_DO
    new = aos_lab.cert("ServiceFabricEncryption", "new").thumbprint
    assert again.message == f"nothing to change: every value of Credentials.json is encrypted to {new}"


def test_refused_when_the_node_cannot_decrypt(aos_lab: Lab, now: datetime) -> None:
    (aos_lab.certs_dir / "AOS1" / "ServiceFabricEncryption-old.pfx").unlink()
    before = aos_lab.credentials_json.read_bytes()
    result = run(aos_lab, now)
    assert result.outcome is Outcome.REFUSED
    assert "node holds the certificates" in result.message
    assert "AosPrincipal.AccountPassword: AOS1 holds no private key the value is encrypted to" in result.message
    assert aos_lab.credentials_json.read_bytes() == before


def test_a_node_with_an_outdated_template_rotates_to_the_wrong_certificate(aos_lab: Lab, now: datetime) -> None:
    # The AOS node's scripts folder still holds the old ConfigTemplate.xml: the script "succeeds"
    # but encrypts to the old certificate; verification catches it and the backup comes back.
    folder = aos_lab.certs_dir / "AOS1"
    facts = read_node_facts(folder)["credentials_json"]
    facts["paths"]["C:\\D365\\Infrastructure"] = "../../InfrastructureOld"
    update_node_facts(folder, credentials_json=facts)
    before = aos_lab.credentials_json.read_bytes()
    result = run(aos_lab, now)
    assert result.outcome is Outcome.FAILED
    assert "are still not encrypted to" in result.message and "every change was rolled back" in result.message
    assert result.rollback[0].endswith(": restored")
    assert aos_lab.credentials_json.read_bytes() == before


def test_a_failing_script_is_reported_with_its_error(aos_lab: Lab, now: datetime) -> None:
    settings = load_settings(aos_lab.config_file)
    settings.sources.winrm.config_template = None
    settings.sources.winrm.nodes = ["AOS1"]
    daemon = Daemon(settings, clock=lambda: now)
    try:
        daemon.collect_once()
        ctx = remediation_context(daemon)
        # Between the check and the run, someone removes the old encipherment certificate from the node.
        (aos_lab.certs_dir / "AOS1" / "ServiceFabricEncryption-old.pfx").unlink()
        before = aos_lab.credentials_json.read_bytes()
        result = remediation_engine(daemon, 0.2).apply(REMEDIATION, ctx)
    finally:
        daemon.stop()
    assert result.outcome is Outcome.FAILED
    assert "AOS1: Configure-CredentialsJson.ps1 exited 1:" in result.message
    assert "does not contain the specified recipient" in result.message
    assert result.rollback[0].endswith(": unchanged")
    assert aos_lab.credentials_json.read_bytes() == before


def test_refused_without_winrm(lab_copy: Lab, now: datetime) -> None:
    settings = load_settings(lab_copy.config_file)
    settings.sources.certfolder.nodes = ["AOS1"]
    daemon = Daemon(settings, clock=lambda: now)
    try:
        daemon.collect_once()
        result = remediation_engine(daemon, 0.2).apply(REMEDIATION, remediation_context(daemon))
    finally:
        daemon.stop()
    assert result.outcome is Outcome.REFUSED
    assert "WinRM configured: the winrm source is not configured" in result.message


def test_regression_refused_when_the_second_hop_is_not_declared(aos_lab: Lab, now: datetime) -> None:
    settings = load_settings(aos_lab.config_file)
    settings.sources.winrm.config_template = None
    settings.sources.winrm.nodes = ["AOS1"]
    settings.sources.credentials.rotate.second_hop = "refuse"
    before = aos_lab.credentials_json.read_bytes()
    daemon = Daemon(settings, clock=lambda: now)
    try:
        daemon.collect_once()
        result = remediation_engine(daemon, 0.2).apply(REMEDIATION, remediation_context(daemon))
    finally:
        daemon.stop()
    assert result.outcome is Outcome.REFUSED
    assert "second hop to the agent share: Configure-CredentialsJson.ps1 on AOS1" in result.message
    assert "Set sources.credentials.rotate.second_hop to copy" in result.message
    assert "credssp (with sources.winrm.transport: credssp" in result.message
    assert "delegation (Kerberos constrained delegation" in result.message
    assert aos_lab.credentials_json.read_bytes() == before


def test_regression_without_delegation_the_share_denies_the_script(aos_lab: Lab, now: datetime) -> None:
    # Declared, but the node is not actually set up for delegation: the script fails as Windows fails it.
    facts = read_node_facts(aos_lab.certs_dir / "AOS1")["credentials_json"]
    update_node_facts(aos_lab.certs_dir / "AOS1", credentials_json={**facts, "delegation": False})
    before = aos_lab.credentials_json.read_bytes()
    result = run(aos_lab, now)
    assert result.outcome is Outcome.FAILED
    assert "AOS1: Configure-CredentialsJson.ps1 exited 1:" in result.message
    assert "Access to the path '\\\\" in result.message and "is denied" in result.message
    assert aos_lab.credentials_json.read_bytes() == before
