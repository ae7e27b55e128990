"""deploy/prometheus/prometheus.yml: promtool accepts it, and a real Prometheus scrapes daemons with it.

The shipped file is used as it is, in a folder that also holds what it references (the CA,
Prometheus's client certificate and key, the basic-auth password, the file_sd targets);
only the targets and the scrape interval change for the test.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import time
import urllib.parse
import urllib.request
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import bcrypt
import pytest
import yaml

from daemon.app import Daemon
from daemon.settings import Settings, load_settings
from simulator.lab import Lab
from simulator.pki import Issued, make_certificate
from tests.conftest import ROOT, free_port

PROMTOOL = shutil.which("promtool")
PROMETHEUS = shutil.which("prometheus")
DEPLOY = ROOT / "deploy" / "prometheus"
PASSWORD = "scrape-password-7f3"


def _pki() -> tuple[Issued, Issued, Issued]:
    now = datetime.now(UTC)
    valid = {"not_before": now - timedelta(days=1), "not_after": now + timedelta(days=30)}
    ca = make_certificate("certmon scrape CA", is_ca=True, **valid)
    server = make_certificate("certmon-exporter", issuer=ca, ip_addresses=("127.0.0.1",), **valid)
    client = make_certificate("prometheus", issuer=ca, server=False, **valid)
    return ca, server, client


def _layout(folder: Path, ca: Issued, client: Issued) -> Path:
    """The shipped configuration with scrape-mtls.yml pasted in and the files it names, in `folder`."""
    config = yaml.safe_load((DEPLOY / "prometheus.yml").read_text(encoding="utf-8"))
    config["scrape_configs"] += yaml.safe_load((DEPLOY / "scrape-mtls.yml").read_text(encoding="utf-8"))
    (folder / "prometheus.yml").write_text(yaml.safe_dump(config), encoding="utf-8")
    shutil.copy(DEPLOY / "rules.yml", folder / "rules.yml")
    shutil.copytree(DEPLOY / "targets", folder / "targets")
    secrets = folder / "certmon"
    secrets.mkdir()
    (secrets / "ca.pem").write_bytes(ca.pem)
    (secrets / "prometheus-client.pem").write_bytes(client.pem)
    (secrets / "prometheus-client.key").write_bytes(client.key_pem)
    (secrets / "basic-auth-password").write_text(PASSWORD + "\n", encoding="utf-8")
    return folder / "prometheus.yml"


@pytest.mark.skipif(PROMTOOL is None, reason="promtool (Debian package prometheus) is not installed")
def test_promtool_accepts_the_shipped_configuration(tmp_path: Path) -> None:
    assert PROMTOOL is not None
    as_shipped = subprocess.run(
        [PROMTOOL, "check", "config", str(DEPLOY / "prometheus.yml")], capture_output=True, text=True, check=False
    )
    assert as_shipped.returncode == 0, as_shipped.stdout + as_shipped.stderr
    ca, _server, client = _pki()
    config = _layout(tmp_path, ca, client)
    assert PROMTOOL is not None
    done = subprocess.run([PROMTOOL, "check", "config", str(config)], capture_output=True, text=True, check=False)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "SUCCESS" in done.stdout and "rules found" in done.stdout
    for name in ("prometheus.yml", "prometheus-global.yml"):
        syntax = subprocess.run(
            [PROMTOOL, "check", "config", "--syntax-only", str(DEPLOY / name)],
            capture_output=True,
            text=True,
            check=False,
        )
        assert syntax.returncode == 0, syntax.stdout + syntax.stderr


def test_every_variant_relabels_to_job_certmon() -> None:
    config = yaml.safe_load((DEPLOY / "prometheus.yml").read_text(encoding="utf-8"))
    mtls = yaml.safe_load((DEPLOY / "scrape-mtls.yml").read_text(encoding="utf-8"))
    jobs = {job["job_name"]: job for job in config["scrape_configs"] + mtls}
    assert set(jobs) == {"certmon-local", "certmon-mtls", "certmon-basic"}
    for job in jobs.values():
        assert job["honor_labels"] is True
        assert {"target_label": "job", "replacement": "certmon"} in job["relabel_configs"]
    assert jobs["certmon-mtls"]["tls_config"]["cert_file"] and "basic_auth" not in jobs["certmon-mtls"]
    assert jobs["certmon-basic"]["basic_auth"]["password_file"]
    assert config["rule_files"] == ["rules.yml"]


@contextmanager
def _daemon(lab: Lab, tmp_path: Path, environment: str, web: dict[str, Any], now: datetime) -> Iterator[Daemon]:
    web_file = tmp_path / f"web-{environment}.yml"
    web_file.write_text(yaml.safe_dump(web), encoding="utf-8")
    settings: Settings = load_settings(lab.config_file)
    settings.environment = environment
    settings.data_dir = tmp_path / f"data-{environment}"
    settings.exporter.web_config_file = web_file
    settings.api.enabled = False
    daemon = Daemon(settings, clock=lambda: now)
    try:
        daemon.collect_once()
        daemon.start(schedule=False)
        yield daemon
    finally:
        daemon.stop()


def _query(port: int, expr: str) -> list[dict[str, Any]]:
    url = f"http://127.0.0.1:{port}/api/v1/query?query={urllib.parse.quote(expr)}"
    with urllib.request.urlopen(url, timeout=10) as response:
        answer = json.loads(response.read())
    assert answer["status"] == "success", answer
    return list(answer["data"]["result"])


@pytest.mark.skipif(PROMETHEUS is None, reason="prometheus (Debian package prometheus) is not installed")
def test_prometheus_scrapes_over_mutual_tls_and_basic_auth(lab: Lab, now: datetime, tmp_path: Path) -> None:
    ca, server, client = _pki()
    pki = tmp_path / "exporter-pki"
    pki.mkdir()
    for name, data in (("ca.pem", ca.pem), ("server.pem", server.pem), ("server.key", server.key_pem)):
        (pki / name).write_bytes(data)
    tls = {"cert_file": str(pki / "server.pem"), "key_file": str(pki / "server.key")}
    mtls = {
        "tls_server_config": {
            **tls,
            "client_auth_type": "RequireAndVerifyClientCert",
            "client_ca_file": str(pki / "ca.pem"),
        }
    }
    basic = {
        "tls_server_config": tls,
        "basic_auth_users": {"prometheus": bcrypt.hashpw(PASSWORD.encode(), bcrypt.gensalt(rounds=4)).decode()},
    }
    folder = tmp_path / "prometheus"
    folder.mkdir()
    config_path = _layout(folder, ca, client)
    with ExitStack() as stack:
        prod = stack.enter_context(_daemon(lab, tmp_path, "contoso-prod", mtls, now))
        uat = stack.enter_context(_daemon(lab, tmp_path, "fabrikam-uat", basic, now))
        assert prod.http is not None and uat.http is not None
        for pattern, daemon, environment in (("mtls", prod, "contoso-prod"), ("basic", uat, "fabrikam-uat")):
            target = daemon.http.url.split("//", 1)[1]  # type: ignore[union-attr]
            entries = [{"targets": [target], "labels": {"__tmp_environment": environment}}]
            (folder / "targets" / f"{pattern}-example.yml").write_text(yaml.safe_dump(entries), encoding="utf-8")
        config = yaml.safe_load(config_path.read_text(encoding="utf-8"))
        config["global"]["scrape_interval"] = "1s"
        config["global"]["scrape_timeout"] = "1s"
        config["scrape_configs"] = [j for j in config["scrape_configs"] if j["job_name"] != "certmon-local"]
        for job in config["scrape_configs"]:
            job["file_sd_configs"][0]["refresh_interval"] = "1s"
        del config["alerting"]
        config_path.write_text(yaml.safe_dump(config), encoding="utf-8")
        port = free_port()
        prometheus = subprocess.Popen(
            [
                str(PROMETHEUS),
                f"--config.file={config_path}",
                f"--storage.tsdb.path={tmp_path / 'tsdb'}",
                f"--web.listen-address=127.0.0.1:{port}",
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        stack.callback(prometheus.wait, 30)
        stack.callback(prometheus.terminate)
        deadline = time.monotonic() + 90
        up: list[dict[str, Any]] = []
        while time.monotonic() < deadline:
            try:
                up = _query(port, 'up{job="certmon"} == 1')
            except OSError:
                up = []
            if len(up) == 2:
                break
            time.sleep(0.5)
        assert len(up) == 2, f"Prometheus did not scrape both daemons: {up}"
        labels = sorted((r["metric"] for r in up), key=lambda m: m["instance"])
        assert [(m["instance"], m["environment"], m["tier"]) for m in labels] == [
            ("contoso-prod", "contoso-prod", "production"),
            ("fabrikam-uat", "fabrikam-uat", "non-production"),
        ]
        series = _query(port, 'certmon_last_evaluation_timestamp_seconds{job="certmon"}')
        assert sorted(r["metric"]["environment"] for r in series) == ["contoso-prod", "fabrikam-uat"]
        assert not any("exported_environment" in r["metric"] for r in series), "the scraped environment is kept"
