"""Settings for logging on as the service itself (gMSA): WinRM negotiate and SQL integrated authentication.

No password anywhere in these configurations; check-config says which identity and protection is used.
What cannot run here: SQL Server itself (the lab's database is PostgreSQL through psqlODBC, which has
no Windows authentication), so the SQL part stops at the connection string the driver receives.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import pytest

from collectors.winrm import WinRMCollector
from daemon.settings import ConfigError, load_settings
from daemon.sources.registry import build_collectors
from daemon.sources.sql import database_specs

NODES = "nodes: [AOS1, SQL1]"


def _write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "certmon.yaml"
    path.write_text(text, encoding="utf-8")
    return path


def test_winrm_negotiate_needs_no_password(tmp_path: Path) -> None:
    path = _write(tmp_path, f"sources:\n  winrm: {{transport: negotiate, {NODES}}}\n")
    settings = load_settings(path)
    section = settings.sources.winrm
    assert section.password_text() == "" and not section.allow_ntlm and section.spn_service == "HTTP"
    (collector,) = [c for c in build_collectors(settings) if c.name == "winrm"]
    assert isinstance(collector, WinRMCollector)
    endpoint = collector.endpoint("AOS1")
    assert endpoint.transport == "negotiate" and endpoint.url == "http://AOS1:5985/wsman"
    assert endpoint.username == "" and endpoint.password == "" and endpoint.spn_service == "HTTP"
    summary = section.auth_summary()
    assert "service's own logon, no password" in summary and "Kerberos only" in summary
    assert "message encryption" in summary


def test_https_negotiate_uses_5986_and_channel_binding(tmp_path: Path) -> None:
    path = _write(
        tmp_path,
        "sources:\n  winrm: {transport: https-negotiate, spn_service: WSMAN, server_thumbprint: "
        f"'aa bb cc dd ee ff 00 11 22 33 44 55 66 77 88 99 aa bb cc dd', {NODES}}}\n",
    )
    settings = load_settings(path)
    (collector,) = [c for c in build_collectors(settings) if c.name == "winrm"]
    assert isinstance(collector, WinRMCollector)
    assert collector.endpoint("SQL1").url == "https://SQL1:5986/wsman"
    summary = settings.sources.winrm.auth_summary()
    assert "TLS with channel binding" in summary and "SPN WSMAN/<node host>" in summary


def test_explicit_account_with_password_file_still_works(tmp_path: Path) -> None:
    secret = tmp_path / "winrm-password.txt"
    secret.write_text("S3cret-value\n", encoding="utf-8")
    path = _write(
        tmp_path,
        "sources:\n  winrm: {transport: negotiate, allow_ntlm: true, username: svc-certmon@CONTOSO.COM, "
        f"password_file: {secret}, {NODES}}}\n",
    )
    settings = load_settings(path)
    (collector,) = [c for c in build_collectors(settings) if c.name == "winrm"]
    assert isinstance(collector, WinRMCollector)
    endpoint = collector.endpoint("AOS1")
    assert endpoint.username == "svc-certmon@CONTOSO.COM" and endpoint.password == "S3cret-value"
    assert endpoint.allow_ntlm
    summary = settings.sources.winrm.auth_summary()
    assert "svc-certmon@CONTOSO.COM with a password" in summary and "NTLM fallback allowed" in summary
    assert "S3cret" not in summary


@pytest.mark.parametrize(
    ("winrm", "message"),
    [
        ("{transport: ntlm, allow_ntlm: true, username: u, password_file: p}", "allow_ntlm chooses NTLM fallback"),
        ("{transport: negotiate, password_file: p}", "a password without username"),
        ("{transport: negotiate, ca_bundle: ca.pem}", "use it with an https- transport"),
        ("{transport: negotiate, spn_service: HOST}", "spn_service"),
        ("{transport: kerbros}", "transport"),
    ],
)
def test_winrm_negotiate_refusals_name_the_setting(tmp_path: Path, winrm: str, message: str) -> None:
    path = _write(tmp_path, f"sources:\n  winrm: {winrm}\n")
    with pytest.raises(ConfigError) as caught:
        load_settings(path)
    assert "winrm" in str(caught.value) and message in str(caught.value)


def test_sql_integrated_auth_adds_trusted_connection_and_needs_no_password(tmp_path: Path) -> None:
    path = _write(
        tmp_path,
        """
sources:
  sql:
    axdb:
      connection_string: "Driver={ODBC Driver 18 for SQL Server};Server=sql1.contoso.com,1433;Database=AXDB;Encrypt=yes"
      integrated_auth: true
    orchestrator_data:
      connection_string: "Driver={ODBC Driver 17 for SQL Server};Server=sql1;Database=OrchestratorData;Trusted_Connection=Yes"
    environment_id: 11111111-2222-3333-4444-555555555555
""",
    )
    settings = load_settings(path)
    specs = database_specs(settings.sources.sql)
    axdb = next(s for s in specs.values() if "AXDB" in s.url)
    assert axdb.url.endswith("Encrypt=yes;Trusted_Connection=yes;") and axdb.password == ""
    orchestrator = next(s for s in specs.values() if "OrchestratorData" in s.url)
    assert orchestrator.url.endswith("Trusted_Connection=Yes") and orchestrator.password == ""
    summary = settings.sources.sql.auth_summary()
    assert summary.count("Windows integrated authentication (Trusted_Connection=yes), no password") == 2


@pytest.mark.parametrize(
    ("database", "message"),
    [
        ('{connection_string: "Driver=x;Server=s;UID=certmon", integrated_auth: true}', "remove UID="),
        ('{connection_string: "Driver=x;Server=s", integrated_auth: true, password_file: p}', "needs no password"),
        ('{connection_string: "Driver=x;Trusted_Connection=no", integrated_auth: true}', "contradicts"),
        ("{database_file: axdb.sqlite, integrated_auth: true}", "not database_file"),
    ],
)
def test_sql_integrated_auth_refusals(tmp_path: Path, database: str, message: str) -> None:
    path = _write(tmp_path, f"sources:\n  sql:\n    axdb: {database}\n")
    with pytest.raises(ConfigError) as caught:
        load_settings(path)
    assert "axdb" in str(caught.value) and message in str(caught.value)


def test_check_config_says_which_identity_is_used(tmp_path: Path, run_cli) -> None:  # type: ignore[no-untyped-def]
    path = _write(
        tmp_path,
        f"""
data_dir: {tmp_path / "data"}
sources:
  winrm: {{transport: negotiate, {NODES}}}
  sql:
    axdb:
      connection_string: "Driver={{ODBC Driver 18 for SQL Server}};Server=sql1;Database=AXDB"
      integrated_auth: true
""",
    )
    done = run_cli("--config", str(path), "check-config", "--format", "json")
    payload = json.loads(done.stdout)
    auth = {row["source"]: row["auth"] for row in payload["sources"] if "auth" in row}
    assert "negotiate (Kerberos only) as the service's own logon, no password" in auth["winrm"]
    assert "Windows integrated authentication" in auth["sql"]
    text = run_cli("--config", str(path), "check-config")
    assert "auth winrm: negotiate (Kerberos only)" in text.stdout
    assert "auth sql: axdb: Windows integrated authentication" in text.stdout


@pytest.mark.skipif(sys.platform == "win32", reason="Windows uses SSPI: nothing to install")
def test_check_config_fails_when_kerberos_is_not_installed(tmp_path: Path, run_cli) -> None:  # type: ignore[no-untyped-def]
    # An installation without the 'kerberos' extra: `import gssapi` fails, as on a plain Linux install.
    blocked = tmp_path / "blocked" / "gssapi"
    blocked.mkdir(parents=True)
    (blocked / "__init__.py").write_text("raise ImportError('gssapi is not installed')\n", encoding="utf-8")
    path = _write(tmp_path, f"data_dir: {tmp_path / 'data'}\nsources:\n  winrm: {{transport: negotiate, {NODES}}}\n")
    from tests.conftest import ROOT

    env = {"PYTHONPATH": f"{blocked.parent}{os.pathsep}{ROOT}"}
    done = run_cli("--config", str(path), "check-config", env=env)
    assert done.returncode == 2
    assert "sources.winrm: transport negotiate needs Kerberos (GSSAPI) on Linux" in done.stderr
    assert "certmon[kerberos]" in done.stderr
    installed = run_cli("--config", str(path), "check-config")
    assert installed.returncode == 0, installed.stderr
