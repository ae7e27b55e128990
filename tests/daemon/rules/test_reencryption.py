"""Re-encryption, Credentials.json and agent share findings on the lab, collected by the real daemon."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime, timedelta

import pytest
import yaml
from prometheus_client import generate_latest
from prometheus_client.parser import text_string_to_metric_families

from collectors.credentials import credentials_rotated_evidence
from collectors.model import Finding
from collectors.sql import (
    Probe,
    axdb_backup_evidence,
    last_full_backup,
    reencryption_complete,
    reencryption_complete_evidence,
    reencryption_enabled,
    reencryption_enabled_evidence,
)
from collectors.sql.queries import CONFIG_KEY, FLIGHT_NAME, JOB_CAPTION
from daemon.app import Daemon
from daemon.settings import load_settings
from simulator.axdb import AxdbWriter, open_sqlite
from simulator.lab import Lab
from simulator.labdata import ENCRYPTED_FIELDS


def probe_key(lab: Lab) -> str:
    """The state store key of the lab's probe."""
    settings = load_settings(lab.config_file)
    (probe,) = settings.sources.sql.probes
    return Probe(probe.name, probe.sql).history_key("AXDB")


def lab_daemon(lab: Lab, now: datetime, **sql: object) -> Daemon:
    """The lab's daemon reading one node's certificates (AOS1 holds every certificate these rules need)."""
    if sql:
        config = yaml.safe_load(lab.config_file.read_text(encoding="utf-8"))
        config["sources"]["sql"].update(sql)
        lab.config_file.write_text(yaml.safe_dump(config), encoding="utf-8")
    settings = load_settings(lab.config_file)
    settings.sources.certfolder.nodes = ["AOS1"]
    return Daemon(settings, clock=lambda: now)


@pytest.fixture
def axdb(lab_copy: Lab) -> Iterator[AxdbWriter]:
    """Writes to the lab's AXDB (SQLite)."""
    connection = open_sqlite(lab_copy.axdb_file)
    try:
        yield AxdbWriter(connection, "sqlite")
    finally:
        connection.close()


def sample(text: str, name: str, **labels: str) -> float:
    """The value of one exposed series."""
    for family in text_string_to_metric_families(text):
        for item in family.samples:
            if item.name == name and all(item.labels.get(k) == v for k, v in labels.items()):
                return float(item.value)
    raise AssertionError(f"no {name} {labels}")


def findings(daemon: Daemon, rule: str) -> list[Finding]:
    return [f for f in daemon.collect_once().evaluation.findings if f.rule == rule]


def enable(axdb: AxdbWriter) -> None:
    axdb.flight(FLIGHT_NAME, 1)
    axdb.connection.execute("UPDATE SECURITYCONFIG SET VALUE = 'True' WHERE KEY_ = ?", (CONFIG_KEY,))


def test_lab_mid_rotation(lab_copy: Lab, now: datetime) -> None:
    daemon = lab_daemon(lab_copy, now)
    try:
        view = daemon.collect_once()
    finally:
        daemon.stop()
    by_rule: dict[str, list[Finding]] = {}
    for finding in view.evaluation.findings:
        by_rule.setdefault(finding.rule, []).append(finding)
    old_data = lab_copy.cert("DataEncryption", "old").thumbprint
    (off,) = by_rule["reencryption-not-enabled"]
    # 25 days left on the old data encryption certificate: inside its 30-day critical window.
    assert (off.severity, off.role, off.thumbprint, off.source, off.target) == (
        "critical",
        "DataEncryption",
        old_data,
        "sql",
        "AXDB",
    )
    assert (off.step, off.remediation) == ("reencryption-enabled", "enable-reencryption")
    assert "SYSFLIGHTING EnableEncryptedDataCrawlerRotationTask (ENABLED = 1) and SECURITYCONFIG" in off.message
    (credentials,) = by_rule["credentials-json-on-old-cert"]
    old_enc = lab_copy.cert("ServiceFabricEncryption", "old").thumbprint
    assert (credentials.severity, credentials.thumbprint, credentials.remediation) == (
        "warning",
        old_enc,
        "credentials-json-rotate",
    )
    assert "3 of 5 values" in credentials.message
    assert "AosPrincipal.AccountPassword, AosSqlAuth.SqlPwd, AosDWAuth.DWPwd" in credentials.message
    share = [f for f in by_rule["agent-config-thumbprint-stale"] if f.source == "agentshare"]
    assert sorted((f.role, f.thumbprint, f.target, f.step, f.remediation) for f in share) == [
        (
            "ServiceFabric",
            lab_copy.cert("ServiceFabric", "old").thumbprint,
            "config.json",
            "deployment-config-updated",
            "deployment-config-update",
        ),
        (
            "ServiceFabricClient",
            lab_copy.cert("ServiceFabricClient", "old").thumbprint,
            "config.json",
            "deployment-config-updated",
            "deployment-config-update",
        ),
    ]
    assert "reencryption-stalled" not in by_rule and "reencryption-eta-after-old-cert-expiry" not in by_rule
    snapshot = view.evaluation.snapshot
    assert reencryption_enabled(snapshot) is False and reencryption_complete(snapshot) is False
    assert last_full_backup(snapshot) == now - timedelta(hours=10)


def test_metrics(lab_copy: Lab, now: datetime) -> None:
    daemon = lab_daemon(lab_copy, now)
    try:
        daemon.collect_once()
        text = generate_latest(daemon.registry).decode()
    finally:
        daemon.stop()
    env = 'environment="demo"'
    old_enc = lab_copy.cert("ServiceFabricEncryption", "old").thumbprint
    new_enc = lab_copy.cert("ServiceFabricEncryption", "new").thumbprint
    for line in (
        f"certmon_reencryption_flight_enabled{{{env}}} 0.0",
        f"certmon_reencryption_config_enabled{{{env}}} 0.0",
        f'certmon_reencryption_job_status_info{{{env},status="absent"}} 1.0',
        f'certmon_reencryption_remaining{{{env},probe="lab-encrypted-fields"}} {ENCRYPTED_FIELDS:.1f}',
        f'certmon_reencryption_progress_ratio{{{env},probe="lab-encrypted-fields"}} 0.0',
        f'certmon_reencryption_job_runs{{{env},result="all"}} 0.0',
        f'certmon_credentials_encrypted_to_info{{{env},generation="old",key="AosPrincipal.AccountPassword",thumbprint="{old_enc}"}} 1.0',
        f'certmon_credentials_encrypted_to_info{{{env},generation="new",key="AosSqlAuth.SqlUser",thumbprint="{new_enc}"}} 1.0',
        f'certmon_credentials_encrypted_to_info{{{env},generation="new",key="AosDWAuth.DWUser",thumbprint="{new_enc}"}} 1.0',
        f'certmon_agent_config_thumbprint_match{{{env},file="config.json",setting="serviceFabric.certificateSettings.serverCertThumbprint"}} 0.0',
        f'certmon_agent_config_thumbprint_match{{{env},file="localagent-config.json",setting="serviceFabric.certificateSettings.clientCertThumbprint"}} 0.0',
    ):
        assert line in text, line
    # No pace yet (one sample): no ETA series.
    assert "certmon_reencryption_eta_timestamp_seconds{" not in text
    assert sample(text, "certmon_axdb_last_full_backup_timestamp_seconds") == (now - timedelta(hours=10)).timestamp()


def test_enabled_clears_the_finding_and_half_enabled_names_what_is_missing(
    lab_copy: Lab, now: datetime, axdb: AxdbWriter
) -> None:
    axdb.flight(FLIGHT_NAME, 1)
    daemon = lab_daemon(lab_copy, now)
    try:
        (half,) = findings(daemon, "reencryption-not-enabled")
        assert "SECURITYCONFIG EnableEncryptedDataRotation = True not set" in half.message
        assert "SYSFLIGHTING" not in half.message
        axdb.connection.execute("UPDATE SECURITYCONFIG SET VALUE = 'True' WHERE KEY_ = ?", (CONFIG_KEY,))
        assert findings(daemon, "reencryption-not-enabled") == []
    finally:
        daemon.stop()


def test_before_the_rotation_nothing_about_reencryption(lab_before: Lab, now: datetime) -> None:
    lab = lab_before
    daemon = lab_daemon(lab, now)
    try:
        rules = {f.rule for f in daemon.collect_once().evaluation.findings}
    finally:
        daemon.stop()
    assert not rules & {
        "reencryption-not-enabled",
        "reencryption-stalled",
        "reencryption-eta-after-old-cert-expiry",
        "credentials-json-on-old-cert",
        "agent-config-thumbprint-stale",
    }


def test_stalled_from_the_recorded_history(lab_copy: Lab, now: datetime, axdb: AxdbWriter) -> None:
    enable(axdb)
    daemon = lab_daemon(lab_copy, now)
    try:
        for days in (4, 3, 2, 1):
            daemon.store.add_progress(
                probe_key(lab_copy), now - timedelta(days=days), float(ENCRYPTED_FIELDS), ENCRYPTED_FIELDS
            )
        (stalled,) = findings(daemon, "reencryption-stalled")
    finally:
        daemon.stop()
    assert stalled.severity == "critical"  # the old certificate is inside its critical window
    assert f"probe lab-encrypted-fields: {ENCRYPTED_FIELDS} left, unchanged since" in stalled.message
    assert "the batch job does not exist yet: restart the AOS nodes" in stalled.message
    assert stalled.step == "reencryption-complete"


def test_eta_after_the_old_certificate_expires(lab_copy: Lab, now: datetime, axdb: AxdbWriter) -> None:
    enable(axdb)
    job = axdb.job(JOB_CAPTION, 1, now + timedelta(hours=14))
    for day in range(7, 0, -1):
        start = now - timedelta(days=day, hours=-8)
        axdb.run(job, JOB_CAPTION, 4, start, start + timedelta(hours=2))
    daemon = lab_daemon(lab_copy, now)
    try:
        # 1,400 left a week ago, 1,200 now: about 29 a day, so some six more weeks.
        daemon.store.add_progress(probe_key(lab_copy), now - timedelta(days=7), 1400.0, 1400.0)
        (late,) = findings(daemon, "reencryption-eta-after-old-cert-expiry")
        assert findings(daemon, "reencryption-stalled") == []
    finally:
        daemon.stop()
    expiry = lab_copy.cert("DataEncryption", "old").issued.cert.not_valid_after_utc
    eta = now + timedelta(hours=1200 / (200 / (7 * 24)))
    assert late.severity == "critical" and late.thumbprint == lab_copy.cert("DataEncryption", "old").thumbprint
    assert f"finishes around {eta:%Y-%m-%d} (1200 left), {(eta - expiry).days} days after" in late.message
    assert f"expires on {expiry:%Y-%m-%d}" in late.message


def test_a_fast_pace_finishes_in_time(lab_copy: Lab, now: datetime, axdb: AxdbWriter) -> None:
    enable(axdb)
    daemon = lab_daemon(lab_copy, now)
    try:
        daemon.store.add_progress(probe_key(lab_copy), now - timedelta(days=2), 3000.0, 3000.0)
        assert findings(daemon, "reencryption-eta-after-old-cert-expiry") == []
        text = generate_latest(daemon.registry).decode()
    finally:
        daemon.stop()
    eta = now + timedelta(hours=1200 / (1800 / 48))
    assert sample(text, "certmon_reencryption_eta_timestamp_seconds", probe="lab-encrypted-fields") == eta.timestamp()
    assert sample(text, "certmon_reencryption_rate_per_second", probe="lab-encrypted-fields") == pytest.approx(
        1800 / 48 / 3600
    )


def test_without_probes_the_job_is_the_signal(lab_copy: Lab, now: datetime, axdb: AxdbWriter) -> None:
    enable(axdb)
    job = axdb.job(JOB_CAPTION, 3, now - timedelta(days=1))
    axdb.run(job, JOB_CAPTION, 3, now - timedelta(days=1), now - timedelta(days=1, hours=-1))
    daemon = lab_daemon(lab_copy, now, probes=[])
    try:
        (stalled,) = findings(daemon, "reencryption-stalled")
        assert reencryption_complete(daemon.view.evaluation.snapshot) is None
    finally:
        daemon.stop()
    assert stalled.message.startswith("no progress probe is configured and the job is Error:")
    assert "last run Error" in stalled.message and "1 of 1 runs ended in error" in stalled.message


def test_complete_means_no_reencryption_findings(lab_copy: Lab, now: datetime, axdb: AxdbWriter) -> None:
    new = lab_copy.cert("DataEncryption", "new").thumbprint
    axdb.reencrypt(lab_copy.cert("DataEncryption", "old").thumbprint, new, ENCRYPTED_FIELDS)
    daemon = lab_daemon(lab_copy, now)
    try:
        view = daemon.collect_once()
    finally:
        daemon.stop()
    assert reencryption_complete(view.evaluation.snapshot) is True
    assert not {f.rule for f in view.evaluation.findings} & {"reencryption-not-enabled", "reencryption-stalled"}


def test_evidence_for_the_rotation_checklist(lab_copy: Lab, now: datetime, axdb: AxdbWriter) -> None:
    daemon = lab_daemon(lab_copy, now, probes=[])
    try:
        view = daemon.collect_once()
        snapshot, references = view.evaluation.snapshot, view.evaluation.references
        enabled = reencryption_enabled_evidence(snapshot)
        assert (enabled.value, enabled.detail) == (
            False,
            "flight EnableEncryptedDataCrawlerRotationTask off, key EnableEncryptedDataRotation off in AXDB",
        )
        complete = reencryption_complete_evidence(snapshot)
        assert complete.value is None and "no progress probe is configured" in complete.detail
        backup = axdb_backup_evidence(snapshot, now - timedelta(days=1))
        assert backup.value is True and backup.detail.startswith(
            f"the newest full backup finished {now - timedelta(hours=10):%Y-%m-%d %H:%M}Z"
        )
        assert axdb_backup_evidence(snapshot, now).value is False
        assert axdb_backup_evidence(snapshot, None).value is None
        rotated = credentials_rotated_evidence(snapshot, references)
        assert rotated.value is False
        assert rotated.detail.endswith("AosPrincipal.AccountPassword, AosSqlAuth.SqlPwd, AosDWAuth.DWPwd")
        enable(axdb)
        daemon.collect_once()
        assert reencryption_enabled_evidence(daemon.view.evaluation.snapshot).value is True
    finally:
        daemon.stop()
