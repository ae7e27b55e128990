"""The winrm source in the daemon: settings, registration, metrics, stale data, and the demo."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml
from prometheus_client import generate_latest

from collectors.winrm import WinRMCollector
from daemon.app import Daemon
from daemon.settings import ConfigError, load_settings
from daemon.sources.registry import build_collectors
from simulator.lab import Lab, write_config
from simulator.winrm import SimulatedFleet

ROOT = Path(__file__).resolve().parents[3]


def winrm_config(tmp_path: Path, lab: Lab, **section: object) -> Path:
    """A certmon.yaml with only a winrm section."""
    values: dict[str, object] = {
        "config_template": str(lab.infrastructure),
        "username": lab.winrm_username,
        "password_file": str(lab.winrm_password_file),
    }
    values.update(section)
    path = tmp_path / "certmon.yaml"
    path.write_text(yaml.safe_dump({"data_dir": str(tmp_path / "data"), "sources": {"winrm": values}}))
    return path


def test_winrm_source_from_settings(lab: Lab, tmp_path: Path) -> None:
    settings = load_settings(winrm_config(tmp_path, lab, concurrency=7, timeout_seconds=12, nodes=["JUMP1"]))
    [collector] = build_collectors(settings)
    assert isinstance(collector, WinRMCollector)
    assert collector.concurrency == 7 and collector.timeout == 12
    assert list(collector.targets()) == ["JUMP1", *[n.name for n in lab.nodes]]
    assert collector.options.password == lab.winrm_password
    assert collector.options.stores == ("LocalMachine\\My",)


def test_password_from_the_environment(lab: Lab, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CERTMON_SOURCES__WINRM__PASSWORD", "from-env-secret")
    settings = load_settings(winrm_config(tmp_path, lab, password_file=None))
    [collector] = build_collectors(settings)
    assert isinstance(collector, WinRMCollector)
    assert collector.options.password == "from-env-secret"
    assert "from-env-secret" not in repr(collector.options)


@pytest.mark.parametrize(
    ("section", "message"),
    [
        ({"stores": ["My"]}, "invalid certificate store"),
        ({"server_thumbprint": "zz"}, "not a thumbprint"),
        ({"server_thumbprint": "A" * 40}, "use it with an https- transport"),
        ({"ca_bundle": "ca.pem"}, "use it with an https- transport"),
        ({"transport": "winrs"}, "sources.winrm.transport"),
        ({"addresses": {"AOS1": "aos1:http"}}, "addresses.AOS1"),
        ({"password": "secret-in-yaml"}, "secrets do not belong in the configuration file"),
    ],
)
def test_bad_winrm_settings(lab: Lab, tmp_path: Path, section: dict[str, object], message: str) -> None:
    with pytest.raises(ConfigError) as caught:
        load_settings(winrm_config(tmp_path, lab, **section))
    assert message in str(caught.value)
    assert "secret-in-yaml" not in str(caught.value)


def test_missing_password_is_a_config_error(lab: Lab, tmp_path: Path) -> None:
    settings = load_settings(winrm_config(tmp_path, lab, password_file=None))
    with pytest.raises(ConfigError, match="needs username and a password"):
        build_collectors(settings)


def test_pinned_thumbprint_is_normalised(lab: Lab, tmp_path: Path) -> None:
    pasted = "\u200e" + " ".join(lab.ca.thumbprint[i : i + 2].lower() for i in range(0, 40, 2))
    settings = load_settings(winrm_config(tmp_path, lab, transport="https-basic", server_thumbprint=pasted))
    assert settings.sources.winrm.server_thumbprint == lab.ca.thumbprint


@pytest.fixture
def fleet(lab: Lab) -> Iterator[SimulatedFleet]:
    """Every lab VM as a simulated node."""
    with SimulatedFleet.from_lab(lab) as simulated:
        yield simulated


def metric_lines(daemon: Daemon, name: str) -> list[str]:
    """Exposition lines of one metric family."""
    text = generate_latest(daemon.registry).decode()
    return [line for line in text.splitlines() if line.startswith(name + "{")]


def test_daemon_exports_winrm_metrics_and_keeps_stale_data(lab: Lab, fleet: SimulatedFleet, tmp_path: Path) -> None:
    write_config(lab, 0, fleet.addresses())
    daemon = Daemon(load_settings(lab.config_file))
    try:
        daemon.collect_once()
        up = metric_lines(daemon, "certmon_source_up")
        assert sum('source="winrm"' in line and line.endswith(" 1.0") for line in up) == len(lab.nodes)
        assert not any('source="certfolder"' in line for line in up)
        sql = lab.current("SQLCluster").thumbprint
        assert metric_lines(daemon, "certmon_sql_tls_cert_info") == [
            f'certmon_sql_tls_cert_info{{environment="demo",instance="MSSQLSERVER",node="SQL1",thumbprint="{sql}"}} 1.0'
        ]
        providers = metric_lines(daemon, "certmon_cert_key_provider_info")
        assert providers and all('provider="capi"' in line for line in providers)
        # Private-key access: each key's readers, by SID and account, and every ACL read.
        readers = metric_lines(daemon, "certmon_cert_key_readers_info")
        axsf = [line for line in readers if 'account="CONTOSO\\\\svc-AXSF$"' in line]
        assert len(axsf) == len(providers), "the lab grants the gMSA on every key"
        assert sum('sid="S-1-5-20"' in line for line in readers) == len(providers)
        acl_read = metric_lines(daemon, "certmon_cert_key_acl_read")
        assert len(acl_read) == len(providers) and all(line.endswith(" 1.0") for line in acl_read)
        aos1_certs = [
            line
            for line in metric_lines(daemon, "certmon_cert_not_after_timestamp_seconds")
            if 'node="AOS1"' in line and 'source="winrm"' in line
        ]
        assert any('store="LocalMachine\\\\Root"' in line for line in aos1_certs)

        fleet["AOS1"].configure(wrong_password=True)
        daemon.collect_once()
        up = metric_lines(daemon, "certmon_source_up")
        assert 'certmon_source_up{environment="demo",source="winrm",target="AOS1"} 0.0' in up
        assert sum('source="winrm"' in line and line.endswith(" 1.0") for line in up) == len(lab.nodes) - 1
        errors = metric_lines(daemon, "certmon_source_errors_total")
        assert (
            'certmon_source_errors_total{environment="demo",reason="auth_failed",source="winrm",target="AOS1"} 1.0'
            in errors
        )
        stale = [
            line
            for line in metric_lines(daemon, "certmon_cert_not_after_timestamp_seconds")
            if 'node="AOS1"' in line and 'source="winrm"' in line
        ]
        assert stale == aos1_certs  # the node's last good inventory stays
        findings = [f for f in daemon.view.evaluation.findings if f.rule == "source-down"]
        assert [(f.source, f.target) for f in findings] == [("winrm", "AOS1")]
        assert "auth_failed" in findings[0].message
    finally:
        daemon.stop()
    exposition = generate_latest(daemon.registry)
    checked = subprocess.run(["promtool", "check", "metrics"], input=exposition, capture_output=True, check=False)
    assert checked.returncode == 0, checked.stderr.decode() + checked.stdout.decode()


def test_demo_reads_the_simulated_nodes_over_winrm(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("CERTMON_")}
    env["PYTHONPATH"] = str(ROOT)
    started = time.monotonic()
    process = subprocess.Popen(
        [sys.executable, "-m", "daemon", "demo", "--dir", str(tmp_path / "demo"), "--port", "0"],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        assert process.stdout is not None
        url = ""
        for line in process.stdout:
            match = re.search(r"metrics: (http://\S+/metrics)", line)
            if match:
                url = match.group(1)
                break
        assert url, "the demo never printed its metrics URL"
        up: list[str] = []
        data: list[str] = []
        while time.monotonic() - started < 90:
            with urllib.request.urlopen(url, timeout=5) as reply:
                text = reply.read().decode()
            up = [
                line
                for line in text.splitlines()
                if line.startswith('certmon_source_up{environment="demo",source="winrm"')
            ]
            # The embedded SQL databases, the agent share and Credentials.json (issue 6).
            data = [
                line
                for line in text.splitlines()
                if re.match(r'certmon_source_up\{environment="demo",source="(sql|agentshare|credentials)"', line)
            ]
            if len(up) == 9 and all(line.endswith(" 1.0") for line in up + data) and len(data) == 4:
                break
            time.sleep(0.2)
        assert len(up) == 9 and all(line.endswith(" 1.0") for line in up), up
        assert len(data) == 4 and all(line.endswith(" 1.0") for line in data), data
        assert 'certmon_reencryption_flight_enabled{environment="demo"} 0.0' in text
        # The remediation reaches the demo's simulated AOS node over WinRM while the demo runs.
        demo_config = str(tmp_path / "demo" / "certmon.yaml")
        rotate = subprocess.run(
            [sys.executable, "-m", "daemon", "-c", demo_config, "remediate", "credentials-json-rotate", "--apply"],
            cwd=ROOT,
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
        assert rotate.returncode == 0, rotate.stdout + rotate.stderr
        assert "re-collected credentials: the findings cleared" in rotate.stdout
        config = yaml.safe_load((tmp_path / "demo" / "certmon.yaml").read_text())
        assert config["sources"]["winrm"]["transport"] == "ntlm"
        assert config["sources"]["certfolder"]["enabled"] is False
    finally:
        process.terminate()
        process.wait(timeout=20)
    assert process.returncode == 0


def test_sql_server_still_using_the_old_certificate_keeps_it(lab: Lab, fleet: SimulatedFleet) -> None:
    """The instance's configured TLS certificate is a reference: the old one is not safe to delete."""
    from simulator.winrm.nodefile import set_sql_certificate

    old_sql = lab.cert("SQLCluster", "old").thumbprint
    set_sql_certificate(lab.certs_dir / "SQL1", "MSSQLSERVER", old_sql)
    write_config(lab, 0, fleet.addresses())
    daemon = Daemon(load_settings(lab.config_file))
    try:
        evaluation = daemon.collect_once().evaluation
    finally:
        daemon.stop()
    refs = [r for r in evaluation.references if r.source == "winrm"]
    assert [(r.role, r.thumbprint, r.generation.value, r.node) for r in refs] == [
        ("SQLCluster", old_sql, "old", "SQL1")
    ]
    (old,) = [c for c in evaluation.checklist.old_certificates if c.thumbprint == old_sql]
    assert not old.safe_to_remove
    assert any("SQL1 SQL Server MSSQLSERVER TLS certificate" in reason for reason in old.blocking)
