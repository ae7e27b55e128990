"""TLS and AD FS sources in the daemon: settings, registration, metrics, findings, stale probes."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime
from pathlib import Path

import pytest
import yaml
from prometheus_client import generate_latest
from prometheus_client.parser import text_string_to_metric_families

from collectors.adfs.collector import AdfsCollector
from collectors.tls.collector import Endpoint, TlsCollector
from daemon.app import Daemon
from daemon.settings import ConfigError, Settings, load_settings
from daemon.sources.registry import build_collectors
from simulator.lab import Lab
from simulator.services import LabServices
from simulator.tls import TlsEndpointServer

Samples = dict[str, list[tuple[dict[str, str], float]]]


def _write(path: Path, config: dict[str, object]) -> Path:
    path.write_text(yaml.safe_dump(config), encoding="utf-8")
    return path


def test_tls_and_adfs_settings_resolve_paths_and_defaults(tmp_path: Path) -> None:
    config = _write(
        tmp_path / "certmon.yaml",
        {
            "data_dir": "data",
            "sources": {
                "tls": {
                    "ca_bundle": "ca/bundle.pem",
                    "endpoints": [
                        {"host": "ax.contoso.com"},
                        {"host": "sql1.contoso.com", "kind": "tds", "ca_bundle": "ca/sql.pem", "role": "SQLCluster"},
                        {"name": "sql-strict", "host": "sql1.contoso.com", "kind": "tds8"},
                        {"host": "sf.contoso.com", "port": 19080, "addresses": ["10.0.1.11", "10.0.1.12"]},
                    ],
                },
                "adfs": {"urls": ["https://adfs.contoso.com/adfs/ls/"], "resolve": {"adfs.contoso.com": "10.0.0.5"}},
            },
        },
    )
    settings = load_settings(config)
    tls = settings.sources.tls
    assert tls.ca_bundle == tmp_path / "ca" / "bundle.pem"
    assert tls.endpoints[1].ca_bundle == tmp_path / "ca" / "sql.pem", "paths inside lists resolve too"
    assert [e.target() for e in tls.endpoints] == [
        "ax.contoso.com:443",
        "sql1.contoso.com:1433",
        "sql-strict",
        "sf.contoso.com:19080",
    ]
    assert (tls.timeout_seconds, tls.interval_seconds) == (10.0, 60.0)
    collectors = {c.name: c for c in build_collectors(settings)}
    tls_collector = collectors["tls"]
    assert isinstance(tls_collector, TlsCollector)
    assert tls_collector.targets() == (
        "ax.contoso.com:443",
        "sql1.contoso.com:1433",
        "sql-strict",
        "sf.contoso.com:19080",
    )
    assert tls_collector.endpoints["sql1.contoso.com:1433"] == Endpoint(
        "sql1.contoso.com:1433",
        "sql1.contoso.com",
        1433,
        "tds",
        ca_bundle=tmp_path / "ca" / "sql.pem",
        role="SQLCluster",
    )
    adfs = collectors["adfs"]
    assert isinstance(adfs, AdfsCollector)
    assert adfs.targets() == ("https://adfs.contoso.com",) and adfs.resolve == {"adfs.contoso.com": "10.0.0.5"}


@pytest.mark.parametrize(
    ("section", "text"),
    [
        ({"tls": {"endpoints": [{"host": "a"}, {"host": "a", "port": 443}]}}, "unique"),
        ({"tls": {"endpoints": [{"host": "a", "kind": "ldaps"}]}}, "sources.tls.endpoints.0.kind"),
        ({"tls": {"endpoints": [{"host": "a", "prot": 443}]}}, "prot"),
        ({"adfs": {"urls": ["http://adfs.contoso.com"]}}, "https"),
    ],
)
def test_bad_settings_name_the_field(tmp_path: Path, section: dict[str, object], text: str) -> None:
    config = _write(tmp_path / "certmon.yaml", {"sources": section})
    with pytest.raises(ConfigError, match=text):
        load_settings(config)


def _samples(daemon: Daemon) -> Samples:
    out: Samples = {}
    for family in text_string_to_metric_families(generate_latest(daemon.registry).decode()):
        for sample in family.samples:
            out.setdefault(sample.name, []).append((dict(sample.labels), float(sample.value)))
    return out


def _value(samples: Samples, name: str, **labels: str) -> list[float]:
    return [v for have, v in samples.get(name, []) if all(have.get(k) == x for k, x in labels.items())]


@pytest.fixture
def lab_daemon(lab: Lab, now: datetime) -> Iterator[tuple[Daemon, LabServices]]:
    with LabServices(lab) as services:
        services.write_config()
        daemon = Daemon(load_settings(lab.config_file), clock=lambda: now)
        for name in ("tls", "adfs"):
            # Validation happens at the lab's moment, like the rest of the evaluation.
            daemon.collectors[name].clock = lambda: now  # type: ignore[attr-defined]
        try:
            yield daemon, services
        finally:
            daemon.stop()


def test_the_lab_services_end_to_end(lab: Lab, lab_daemon: tuple[Daemon, LabServices]) -> None:
    daemon, services = lab_daemon
    view = daemon.collect_once()
    samples = _samples(daemon)
    targets = [e["name"] for e in services.endpoints]
    for target in targets:
        assert _value(samples, "certmon_source_up", source="tls", target=target) == [1.0], target
    assert _value(samples, "certmon_source_up", source="adfs") == [1.0]
    assert _value(samples, "certmon_tls_probe_success", target="aos", node="127.0.0.2", kind="tls") == [1.0]
    assert _value(samples, "certmon_tls_chain_valid", target="wrong-name", error="hostname_mismatch") == [0.0]
    assert _value(samples, "certmon_tls_chain_valid", target="sql", error="") == [1.0]
    assert _value(samples, "certmon_tls_version_info", target="sql", version="TLS 1.2")
    assert _value(samples, "certmon_tds_prelogin_info", target="sql-strict", encryption="strict")

    sql = lab.current("SQLCluster").thumbprint
    assert _value(
        samples,
        "certmon_cert_not_after_timestamp_seconds",
        source="tls",
        node="127.0.0.1",
        store="sql",
        role="SQLCluster",
        thumbprint=sql,
    ) == [lab.current("SQLCluster").issued.cert.not_valid_after_utc.timestamp()]
    signing_old = lab.service_certs["ADFSTokenSigning-old"].thumbprint
    assert _value(
        samples,
        "certmon_cert_not_after_timestamp_seconds",
        source="adfs",
        role="ADFSTokenSigning",
        thumbprint=signing_old,
    )

    findings = {(f.rule, f.target, f.thumbprint) for f in view.evaluation.findings}
    assert ("cert-inconsistent-across-nodes", "sf-gateway", "") in findings
    assert ("tls-chain-invalid", "wrong-name", lab.service_certs["tls-wrongname"].thumbprint) in findings
    assert ("tls-chain-invalid", "untrusted", lab.service_certs["tls-untrusted"].thumbprint) in findings
    assert not any(rule == "tls-chain-invalid" and target == "expired" for rule, target, _ in findings)
    assert ("cert-expired", "", lab.service_certs["tls-expired"].thumbprint) in findings
    # The old token-signing certificate expires in 15 days, but AD FS has promoted the new one (it signs
    # the metadata): superseded, so no expiry warning, and self-signed by design, so no self-signed finding.
    assert not any(thumbprint == signing_old for _rule, _target, thumbprint in findings)
    signing_new = lab.service_certs["ADFSTokenSigning-new"].thumbprint
    assert _value(samples, "certmon_adfs_token_certificate_info", thumbprint=signing_old, state="superseded")
    assert _value(samples, "certmon_adfs_token_certificate_info", thumbprint=signing_new, state="primary")
    assert _value(samples, "certmon_adfs_rollover_pending", role="ADFSTokenSigning") == [0.0]
    assert not any(rule == "tls-probe-failed" for rule, _, _ in findings)
    inconsistent = next(f for f in view.evaluation.findings if f.rule == "cert-inconsistent-across-nodes")
    assert "127.0.0.1" in inconsistent.message and "127.0.0.2" in inconsistent.message


def test_a_failing_endpoint_keeps_its_certificate_and_reports_probe_failure(
    lab: Lab, now: datetime, tmp_path: Path
) -> None:
    star = lab.cert("ServiceFabric", "new").issued
    settings = Settings(data_dir=tmp_path / "data", environment="lab")
    server = TlsEndpointServer(star, (lab.ca,)).start()
    endpoint = Endpoint("aos", "ax.d365ffo.onprem.contoso.lab", server.port, addresses=("127.0.0.1",))
    collector = TlsCollector([endpoint], lab.ca_bundle, clock=lambda: now, timeout=5)
    daemon = Daemon(settings, collectors=[collector], clock=lambda: now)
    try:
        daemon.collect_once()
        assert _value(_samples(daemon), "certmon_tls_probe_success", target="aos") == [1.0]
        server.stop()
        view = daemon.collect_once()
        samples = _samples(daemon)
    finally:
        daemon.stop()
    assert _value(samples, "certmon_source_up", source="tls", target="aos") == [0.0]
    assert _value(samples, "certmon_source_errors_total", target="aos", reason="connection_refused") == [1.0]
    assert _value(samples, "certmon_tls_probe_success", target="aos") == [0.0], "a failing probe is not a success"
    assert _value(samples, "certmon_tls_chain_valid", target="aos") == [1.0], "last known verdict kept"
    assert _value(samples, "certmon_cert_not_after_timestamp_seconds", source="tls", thumbprint=star.thumbprint)
    assert [f.rule for f in view.evaluation.findings if f.source == "tls"] == ["source-down"]


def test_a_name_that_never_resolves_reads_probe_success_zero(lab: Lab, now: datetime, tmp_path: Path) -> None:
    """blackbox_exporter's probe_success is 0 on a DNS failure; certmon's is 0 too, never absent."""
    settings = Settings(data_dir=tmp_path / "data", environment="lab")
    endpoint = Endpoint("nowhere", "certmon-does-not-exist.invalid", 443)
    collector = TlsCollector([endpoint], lab.ca_bundle, clock=lambda: now, timeout=5)
    daemon = Daemon(settings, collectors=[collector], clock=lambda: now)
    try:
        daemon.collect_once()
        samples = _samples(daemon)
    finally:
        daemon.stop()
    assert _value(samples, "certmon_source_up", source="tls", target="nowhere") == [0.0]
    assert _value(samples, "certmon_tls_probe_success", target="nowhere", node="", kind="") == [0.0]


def test_check_config_names_a_missing_ca_bundle(tmp_path: Path, run_cli) -> None:  # type: ignore[no-untyped-def]
    config = _write(
        tmp_path / "certmon.yaml",
        {"sources": {"tls": {"endpoints": [{"host": "ax.contoso.com", "ca_bundle": "nope.pem"}]}}},
    )
    result = run_cli("--config", str(config), "check-config")
    assert result.returncode == 2, result.stdout + result.stderr
    assert f"sources.tls.endpoints.0.ca_bundle: {tmp_path / 'nope.pem'} does not exist" in result.stdout + result.stderr
