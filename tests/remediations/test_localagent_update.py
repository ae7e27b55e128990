"""localagent-config-update on the generated lab: preconditions, plan, byte-exact apply."""

from __future__ import annotations

import hashlib
from datetime import datetime, timedelta

import pytest

from collectors.agentconfig import CLIENT_SETTING, SERVER_SETTING, load_agent_config
from daemon.app import Daemon
from daemon.remediation import remediation_engine
from daemon.settings import Settings
from remediations.base import RemediationContext
from remediations.engine import Engine
from remediations.localagent import LocalAgentConfigUpdate
from remediations.outcome import Outcome
from simulator.lab import Lab
from tests.remediations.conftest import lab_context, lab_settings_for

REMEDIATION = LocalAgentConfigUpdate()


def _new(lab: Lab) -> tuple[str, str]:
    return lab.cert("ServiceFabric", "new").thumbprint, lab.cert("ServiceFabricClient", "new").thumbprint


def _old(lab: Lab) -> tuple[str, str]:
    return lab.cert("ServiceFabric", "old").thumbprint, lab.cert("ServiceFabricClient", "old").thumbprint


def _collected(settings: Settings, now: datetime) -> tuple[Daemon, RemediationContext, Engine]:
    daemon = Daemon(settings, clock=lambda: now)
    daemon.collect_once()
    return daemon, lab_context(daemon), remediation_engine(daemon, lock_timeout=0.2, actor="tester")


def test_lab_preconditions_pass_and_plan_names_both_settings(lab_copy: Lab, ctx: RemediationContext) -> None:
    checks = REMEDIATION.preconditions(ctx)
    assert [c.name for c in checks] == [
        "localagent-config.json configured",
        "localagent-config.json collected",
        "cluster thumbprints known",
        "new certificates in the inventory",
        "cluster configuration upgrade completed",
    ]
    assert all(c.ok for c in checks), checks
    assert checks[-1].detail.startswith("OVERRIDDEN by the operator (--without-cluster-evidence")
    plan = REMEDIATION.plan(ctx)
    (change,) = plan.files()
    server, client = _new(lab_copy)
    old_server, old_client = _old(lab_copy)
    assert [(v.setting, v.before, v.after) for v in change.values] == [
        (SERVER_SETTING, old_server, server),
        (CLIENT_SETTING, old_client, client),
    ]
    assert change.after == change.before.replace(old_server.encode(), server.encode()).replace(
        old_client.encode(), client.encode()
    )
    assert "LocalAgentCLI.exe Cleanup" in plan.follow_up[0]
    assert "LocalAgentCLI.exe Install" in plan.follow_up[1]
    assert "CRLF line endings kept" in plan.render()
    assert f'-            "serverCertThumbprint": "{old_server}",' in change.diff()
    assert f'+            "serverCertThumbprint": "{server}",' in change.diff()


def test_hand_edited_windows_file_keeps_every_other_byte(lab_copy: Lab, rsettings: Settings, now: datetime) -> None:
    old_server, old_client = _old(lab_copy)
    server, client = _new(lab_copy)
    # Lower case with spaces as pasted from MMC, tabs, odd indentation, unknown keys, BOM and CRLF.
    pasted = " ".join(old_server[i : i + 2] for i in range(0, 40, 2)).lower()
    original = (
        "\ufeff{\r\n"
        '\t"serviceFabric":{\r\n'
        '\t\t"connectionEndpoint" : "10.0.0.11:19000",\r\n'
        '\t\t"clusterId": "d365fo-onprem-cluster",\r\n'
        '\t\t"certificateSettings": {\r\n'
        f'\t\t   "clientCertThumbprint"  :  "{old_client}",\r\n'
        '\t\t   "x-operator-note": "rotated 2024 \\u2013 see ticket",\r\n'
        f'\t\t   "serverCertThumbprint": "{pasted}"\r\n'
        "\t\t}\r\n"
        "\t},\r\n"
        '  "components" : [ {"name": "AXSF", "version": "10.0.42"} ],\r\n'
        '\t"deploymentOptions": {"enableSSIS": false}\r\n'
        "}\r\n"
    ).encode()
    lab_copy.localagent_config.write_bytes(original)
    daemon, ctx, engine = _collected(rsettings, now)
    try:
        result = engine.apply(REMEDIATION, ctx)
    finally:
        daemon.stop()
    assert result.outcome is Outcome.APPLIED, result.message
    expected = original.replace(pasted.encode(), server.encode()).replace(old_client.encode(), client.encode())
    assert lab_copy.localagent_config.read_bytes() == expected
    assert result.cleared is True


def test_configtemplate_is_the_fallback_without_cluster_data(lab_copy: Lab, rsettings: Settings, now: datetime) -> None:
    rsettings.sources.clusterconfig.path = None
    daemon, ctx, _engine = _collected(rsettings, now)
    daemon.stop()
    checks = {c.name: c for c in REMEDIATION.preconditions(ctx)}
    assert "from ConfigTemplate.xml (Infrastructure)" in checks["cluster thumbprints known"].detail
    (change,) = REMEDIATION.plan(ctx).files()
    assert tuple(v.after for v in change.values) == _new(lab_copy)


def test_missing_setting_is_inserted(lab_copy: Lab, rsettings: Settings, now: datetime) -> None:
    _old_server, old_client = _old(lab_copy)
    text = lab_copy.localagent_config.read_bytes()
    without_client = text.replace(f',\r\n            "clientCertThumbprint": "{old_client}"'.encode(), b"")
    assert without_client != text
    lab_copy.localagent_config.write_bytes(without_client)
    daemon, ctx, engine = _collected(rsettings, now)
    try:
        result = engine.apply(REMEDIATION, ctx)
    finally:
        daemon.stop()
    assert result.outcome is Outcome.APPLIED, result.message
    server, client = _new(lab_copy)
    config = load_agent_config(lab_copy.localagent_config)
    assert (config.server_thumbprint, config.client_thumbprint) == (server, client)
    assert (
        f'"serverCertThumbprint": "{server}",\r\n            "clientCertThumbprint": "{client}"\r\n'.encode()
        in lab_copy.localagent_config.read_bytes()
    )


def _refused(ctx: RemediationContext, engine: Engine, lab: Lab) -> str:
    before = hashlib.sha256(lab.localagent_config.read_bytes()).hexdigest()
    result = engine.apply(REMEDIATION, ctx)
    assert result.outcome is Outcome.REFUSED
    assert result.exit_code == 1
    assert hashlib.sha256(lab.localagent_config.read_bytes()).hexdigest() == before
    return result.message


def test_refuses_when_new_certificate_is_missing_from_inventory(
    lab_copy: Lab, rsettings: Settings, now: datetime
) -> None:
    server, _client = _new(lab_copy)
    (lab_copy.certs_dir / "ORCH1" / "ServiceFabric-new.pfx").unlink()
    daemon, ctx, engine = _collected(rsettings, now)
    try:
        message = _refused(ctx, engine, lab_copy)
    finally:
        daemon.stop()
    assert message == (
        "precondition failed: new certificates in the inventory: "
        f"ServiceFabric certificate {server} is not in the inventory of any node"
    )


def test_refuses_without_any_inventory(lab_copy: Lab, rsettings: Settings, now: datetime) -> None:
    rsettings.sources.certfolder.enabled = False
    daemon, ctx, engine = _collected(rsettings, now)
    try:
        message = _refused(ctx, engine, lab_copy)
    finally:
        daemon.stop()
    assert "no certificate inventory" in message


def test_refuses_when_new_certificate_has_expired(lab_copy: Lab, rsettings: Settings, now: datetime) -> None:
    daemon, ctx, engine = _collected(rsettings, now + timedelta(days=800))
    try:
        message = _refused(ctx, engine, lab_copy)
    finally:
        daemon.stop()
    assert "ServiceFabric certificate" in message
    assert "expired on" in message


def test_refuses_when_the_file_cannot_be_parsed(lab_copy: Lab, rsettings: Settings, now: datetime) -> None:
    lab_copy.localagent_config.write_bytes(b'{"serviceFabric": {"certificateSettings": ')
    daemon, ctx, engine = _collected(rsettings, now)
    try:
        message = _refused(ctx, engine, lab_copy)
    finally:
        daemon.stop()
    assert "localagent-config.json collected: localagent-config.json: parse_error: " in message
    assert "invalid JSON at line 1 column 43" in message


def test_refuses_when_the_file_is_not_configured(lab_copy: Lab, now: datetime) -> None:
    settings = lab_settings_for(lab_copy)
    settings.sources.localagent.path = None
    daemon, ctx, engine = _collected(settings, now)
    try:
        message = _refused(ctx, engine, lab_copy)
    finally:
        daemon.stop()
    assert "localagent-config.json configured: sources.localagent.path is not set" in message
    assert "the localagent source was not collected" in message


@pytest.mark.parametrize("case", ["lower", "spaced"])
def test_equal_thumbprints_in_another_spelling_need_no_change(
    lab_copy: Lab, rsettings: Settings, now: datetime, case: str
) -> None:
    old_server, old_client = _old(lab_copy)
    server, client = _new(lab_copy)

    def spell(value: str) -> str:
        return value.lower() if case == "lower" else "\u200e" + " ".join(value[i : i + 2] for i in range(0, 40, 2))

    text = lab_copy.localagent_config.read_text(encoding="utf-8")
    text = text.replace(old_server, spell(server)).replace(old_client, spell(client))
    lab_copy.localagent_config.write_bytes(text.encode())
    daemon, ctx, engine = _collected(rsettings, now)
    try:
        result = engine.apply(REMEDIATION, ctx)
    finally:
        daemon.stop()
    assert result.outcome is Outcome.NOTHING_TO_DO
    assert "already carries the cluster's thumbprints" in result.message
    assert lab_copy.localagent_config.read_bytes() == text.encode()
