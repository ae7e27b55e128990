"""The exporter over real HTTP: the metric contract, promtool, TLS and basic auth from a web config."""

from __future__ import annotations

import base64
import gzip
import shutil
import ssl
import subprocess
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import bcrypt
import pytest
from prometheus_client.parser import text_string_to_metric_families

from collectors.errors import Reason
from daemon.app import Daemon
from daemon.settings import Settings
from simulator.lab import Lab
from simulator.pki import make_certificate

PROMTOOL = shutil.which("promtool")


@pytest.fixture
def daemon(lab_settings: Settings, now) -> Iterator[Daemon]:  # type: ignore[no-untyped-def]
    daemon = Daemon(lab_settings, clock=lambda: now)
    daemon.collect_once()
    daemon.start(schedule=False)
    yield daemon
    daemon.stop()


def _get(
    url: str, headers: dict[str, str] | None = None, context: ssl.SSLContext | None = None
) -> tuple[int, bytes, dict[str, str]]:
    request = urllib.request.Request(url, headers=headers or {})
    try:
        with urllib.request.urlopen(request, timeout=10, context=context) as response:
            return response.status, response.read(), dict(response.headers)
    except urllib.error.HTTPError as err:
        return err.code, err.read(), dict(err.headers)


def _samples(body: bytes) -> dict[str, list]:  # type: ignore[type-arg]
    out: dict[str, list] = {}  # type: ignore[type-arg]
    for family in text_string_to_metric_families(body.decode()):
        for sample in family.samples:
            out.setdefault(sample.name, []).append(sample)
    return out


def test_metrics_follow_the_contract(daemon: Daemon, lab: Lab) -> None:
    assert daemon.http is not None
    status, body, headers = _get(daemon.http.url + "/metrics")
    assert status == 200 and headers["Content-Type"].startswith("text/plain")
    samples = _samples(body)
    new_de = lab.cert("DataEncryption", "new")
    expiry = [
        s
        for s in samples["certmon_cert_not_after_timestamp_seconds"]
        if s.labels["thumbprint"] == new_de.thumbprint and s.labels["node"] == "AOS1"
    ]
    assert len(expiry) == 1
    labels = expiry[0].labels
    assert labels == {
        "environment": "demo",
        "source": "certfolder",
        "node": "AOS1",
        "store": "LocalMachine\\My",
        "thumbprint": new_de.thumbprint,
        "subject_cn": "DataEncryption.d365ffo.onprem",
        "issuer_cn": "DataEncryption.d365ffo.onprem",
        "role": "DataEncryption",
    }
    assert expiry[0].value == new_de.issued.cert.not_valid_after_utc.timestamp()
    root = [
        s for s in samples["certmon_cert_not_after_timestamp_seconds"] if s.labels["thumbprint"] == lab.ca.thumbprint
    ]
    assert root and all(s.labels["role"] == "" for s in root)
    assert {s.labels["node"] for s in samples["certmon_cert_has_private_key"] if s.value == 1.0} >= {"AOS1", "SQL1"}
    expected = {
        (s.labels["role"], s.labels["thumbprint"], s.labels["generation"])
        for s in samples["certmon_expected_cert_info"]
    }
    assert ("DataEncryption", new_de.thumbprint, "new") in expected
    assert ("DataEncryption", lab.cert("DataEncryption", "old").thumbprint, "old") in expected
    # The cluster's secondary and the stale local agent settings resolve to the old generation.
    assert ("ServiceFabric", lab.cert("ServiceFabric", "old").thumbprint, "old") in expected
    up = {(s.labels["source"], s.labels["target"]): s.value for s in samples["certmon_source_up"]}
    assert up[("certfolder", "AOS1")] == 1.0 and up[("configtemplate", "InfrastructureOld")] == 1.0
    assert "certmon_source_last_success_timestamp_seconds" in samples
    assert "certmon_source_duration_seconds" in samples
    findings = {(s.labels["rule"], s.labels["role"]) for s in samples["certmon_finding"]}
    assert ("cert-expiry-critical", "DataEncryption") in findings
    assert samples["certmon_build_info"][0].labels["version"]
    assert samples["certmon_build_info"][0].labels["environment"] == daemon.settings.environment


def test_healthz_and_unknown_paths(daemon: Daemon) -> None:
    assert daemon.http is not None
    status, body, _ = _get(daemon.http.url + "/healthz")
    assert status == 200 and b'"ok"' in body
    assert _get(daemon.http.url + "/nope")[0] == 404


def test_the_landing_page_links_metrics_health_and_the_status_page(daemon: Daemon) -> None:
    assert daemon.http is not None
    status, body, headers = _get(daemon.http.url + "/")
    page = body.decode()
    assert status == 200 and headers["Content-Type"].startswith("text/html")
    assert 'href="metrics"' in page and 'href="healthz"' in page and daemon.settings.environment in page
    assert daemon.api is not None and f'href="{daemon.api.url}/"' in page
    assert "default-src 'none'" in headers["Content-Security-Policy"]


def test_process_metrics_are_exported(daemon: Daemon) -> None:
    assert daemon.http is not None
    samples = _samples(_get(daemon.http.url + "/metrics")[1])
    assert samples["process_resident_memory_bytes"][0].value > 0
    assert samples["process_open_fds"][0].value > 0


def test_gzip_when_asked(daemon: Daemon) -> None:
    assert daemon.http is not None
    status, body, headers = _get(daemon.http.url + "/metrics", {"Accept-Encoding": "gzip"})
    assert status == 200 and headers.get("Content-Encoding") == "gzip"
    assert b"certmon_build_info" in gzip.decompress(body)


def test_a_scrape_opens_no_source(daemon: Daemon, lab: Lab) -> None:
    """Scrapes render the latest view: deleting every source file changes nothing until the next cycle."""
    assert daemon.http is not None
    before = _samples(_get(daemon.http.url + "/metrics")[1])
    lab.cluster_config.unlink()
    shutil.rmtree(lab.certs_dir)
    after = _samples(_get(daemon.http.url + "/metrics")[1])
    assert len(after["certmon_cert_not_after_timestamp_seconds"]) == len(
        before["certmon_cert_not_after_timestamp_seconds"]
    )
    daemon.runner.run_source("clusterconfig")
    daemon.publish()
    later = _samples(_get(daemon.http.url + "/metrics")[1])
    up = {(s.labels["source"], s.labels["target"]): s.value for s in later["certmon_source_up"]}
    assert up[("clusterconfig", "ClusterConfig.json")] == 0.0
    errors = [s for s in later["certmon_source_errors_total"] if s.labels["source"] == "clusterconfig"]
    assert [(s.labels["reason"], s.value) for s in errors if s.value] == [("not_found", 1.0)]
    # Every reason of the closed set is there from 0 (before the first error too), so increase() sees it.
    assert {s.labels["reason"] for s in errors} == {str(r) for r in Reason}
    first = [s for s in before["certmon_source_errors_total"] if s.labels["source"] == "clusterconfig"]
    assert {s.labels["reason"] for s in first} == {str(r) for r in Reason} and not any(s.value for s in first)
    # The last good configuration is still exported (stale), so references do not vanish.
    refs = [s for s in later["certmon_expected_cert_info"] if "ClusterConfig.json" in s.labels["reference"]]
    assert refs


@pytest.mark.skipif(PROMTOOL is None, reason="promtool (Debian package prometheus) is not installed")
def test_promtool_check_metrics_is_clean(daemon: Daemon) -> None:
    assert daemon.http is not None
    _, body, _ = _get(daemon.http.url + "/metrics")
    done = subprocess.run([PROMTOOL, "check", "metrics"], input=body, capture_output=True, check=False)
    assert done.returncode == 0, done.stdout.decode() + done.stderr.decode()
    assert done.stdout.strip() == b"" and done.stderr.strip() == b""


@pytest.fixture
def tls_files(tmp_path: Path, now) -> dict[str, Path]:  # type: ignore[no-untyped-def]
    ca = make_certificate(
        "Exporter Test CA", not_before=now.replace(year=2025), not_after=now.replace(year=2030), is_ca=True
    )
    server = make_certificate(
        "localhost",
        not_before=now.replace(year=2025),
        not_after=now.replace(year=2030),
        issuer=ca,
        dns_names=("localhost",),
        ip_addresses=("127.0.0.1",),
    )
    client = make_certificate(
        "prometheus", not_before=now.replace(year=2025), not_after=now.replace(year=2030), issuer=ca
    )
    files = {}
    for name, item in (("ca", ca), ("server", server), ("client", client)):
        files[f"{name}.crt"] = tmp_path / f"{name}.crt"
        files[f"{name}.crt"].write_bytes(item.pem)
        files[f"{name}.key"] = tmp_path / f"{name}.key"
        files[f"{name}.key"].write_bytes(item.key_pem)
    return files


def test_tls_and_basic_auth_from_a_web_config(
    lab: Lab, lab_settings: Settings, tls_files: dict[str, Path], tmp_path: Path, now
) -> None:  # type: ignore[no-untyped-def]
    hashed = bcrypt.hashpw(b"scrape-pass", bcrypt.gensalt(rounds=4)).decode().replace("$2b$", "$2y$", 1)
    web = tmp_path / "web.yml"
    web.write_text(f"""tls_server_config:
  cert_file: server.crt
  key_file: server.key
  client_auth_type: RequireAndVerifyClientCert
  client_ca_file: ca.crt
  min_version: TLS12
http_server_config:
  headers:
    X-Frame-Options: deny
basic_auth_users:
  prometheus: {hashed}
""")
    if PROMTOOL is not None:
        done = subprocess.run([PROMTOOL, "check", "web-config", str(web)], capture_output=True, check=False)
        assert done.returncode == 0, done.stdout.decode() + done.stderr.decode()
    settings = lab_settings.model_copy(
        update={"exporter": lab_settings.exporter.model_copy(update={"web_config_file": web})}
    )
    daemon = Daemon(settings, clock=lambda: now)
    daemon.start()
    try:
        assert daemon.http is not None and daemon.http.url.startswith("https://")
        url = daemon.http.url.replace("127.0.0.1", "localhost") + "/metrics"
        context = ssl.create_default_context(cafile=str(tls_files["ca.crt"]))
        context.load_cert_chain(str(tls_files["client.crt"]), str(tls_files["client.key"]))
        good = {"Authorization": "Basic " + base64.b64encode(b"prometheus:scrape-pass").decode()}
        bad = {"Authorization": "Basic " + base64.b64encode(b"prometheus:wrong").decode()}
        status, body, headers = _get(url, good, context)
        assert status == 200 and b"certmon_build_info" in body and headers["X-Frame-Options"] == "deny"
        status, _, headers = _get(url, bad, context)
        assert status == 401 and headers["WWW-Authenticate"].startswith("Basic")
        assert _get(url, None, context)[0] == 401
        no_client_cert = ssl.create_default_context(cafile=str(tls_files["ca.crt"]))
        with pytest.raises((urllib.error.URLError, ssl.SSLError, ConnectionError)):
            _get(url, good, no_client_cert)
        with pytest.raises((urllib.error.URLError, ConnectionError)):
            _get(url.replace("https://", "http://"), good)
    finally:
        daemon.stop()


def test_bad_web_configs_are_refused(tmp_path: Path) -> None:
    from daemon.settings import ConfigError
    from daemon.webconfig import load_web_config

    cases = {
        "tls_server_config: {cert_file: a.crt}\n": "key_file is required",
        "tls_server_config: {cert_file: a.crt, key_file: a.key, client_auth_type: Sometimes}\n": "unknown value",
        "basic_auth_users: {alice: plaintext}\n": "expected a bcrypt hash",
        "tls_config: {}\n": "unknown field 'tls_config'",
        "tls_server_config: {cert_file: a.crt, key_file: a.key}\n": "cannot load cert_file/key_file",
    }
    for text, fragment in cases.items():
        path = tmp_path / "web.yml"
        path.write_text(text)
        with pytest.raises(ConfigError, match=fragment):
            load_web_config(path)
