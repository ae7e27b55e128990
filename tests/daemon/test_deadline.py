"""certmon_rotation_start_by_timestamp_seconds on the lab: notAfter − 30 days − re-encryption days − lead days."""

from __future__ import annotations

from datetime import datetime, timedelta

import pytest
from prometheus_client import generate_latest

from daemon.app import Daemon
from daemon.deadline import reencryption_duration, rotation_deadlines
from daemon.settings import Settings
from simulator.lab import Lab
from simulator.labdata import ENCRYPTED_FIELDS
from tests.daemon.rules.test_reencryption import probe_key, sample
from tests.remediations.conftest import lab_settings_for


def _daemon(lab: Lab, now: datetime, settings: Settings) -> Daemon:
    daemon = Daemon(settings, clock=lambda: now)
    daemon.collect_once()
    return daemon


def test_the_deadline_of_each_role_and_its_metric(lab_copy: Lab, now: datetime) -> None:
    settings = lab_settings_for(lab_copy)
    settings.sources.certfolder.nodes = ["ORCH1", "AOS1"]  # the Service Fabric and the AOS certificates
    settings.rules.rotation_lead_days = 10
    settings.rules.reencryption_days = 20
    daemon = _daemon(lab_copy, now, settings)
    try:
        deadlines = {d.role: d for d in rotation_deadlines(daemon.view.evaluation, settings)}
        text = generate_latest(daemon.registry).decode()
    finally:
        daemon.stop()
    data = lab_copy.cert("DataEncryption", "new")
    assert deadlines["DataEncryption"].thumbprint == data.thumbprint
    not_after = data.issued.cert.not_valid_after_utc
    assert deadlines["DataEncryption"].start_by == not_after - timedelta(days=30 + 20 + 10)
    sf = lab_copy.cert("ServiceFabric", "new")
    assert deadlines["ServiceFabric"].start_by == sf.issued.cert.not_valid_after_utc - timedelta(days=30 + 10)
    line = (
        f'certmon_rotation_start_by_timestamp_seconds{{environment="demo",role="DataEncryption",'
        f'thumbprint="{data.thumbprint}"}} {(not_after - timedelta(days=60)).timestamp():.1f}'
    )
    assert any(candidate.startswith(line.split(" ", maxsplit=1)[0]) for candidate in text.splitlines())
    value = next(c for c in text.splitlines() if c.startswith(line.split(" ", maxsplit=1)[0])).split(" ")[1]
    assert float(value) == (not_after - timedelta(days=60)).timestamp()


def test_without_a_measured_pace_the_configured_duration_is_used_and_exported(lab_copy: Lab, now: datetime) -> None:
    settings = lab_settings_for(lab_copy)
    settings.sources.certfolder.nodes = ["AOS1"]
    settings.rules.reencryption_days = 20
    daemon = _daemon(lab_copy, now, settings)
    try:
        duration = reencryption_duration(daemon.view.evaluation, settings)
        text = generate_latest(daemon.registry).decode()
    finally:
        daemon.stop()
    assert (duration.basis, duration.days) == ("configured", 20)
    assert sample(text, "certmon_reencryption_duration_seconds", basis="configured") == 20 * 86400
    assert 'certmon_reencryption_duration_seconds{basis="measured"' not in text


def test_a_measured_reencryption_pace_sets_the_data_encryption_deadline(lab_copy: Lab, now: datetime) -> None:
    settings = lab_settings_for(lab_copy)
    settings.sources.certfolder.nodes = ["AOS1"]
    settings.rules.rotation_lead_days = 10
    settings.rules.reencryption_days = 20
    daemon = Daemon(settings, clock=lambda: now)
    try:
        # The probe read 3,000 two days ago and reads 1,200 of 1,200 now: 37.5 an hour, 1,200 in 32 hours.
        daemon.store.add_progress(probe_key(lab_copy), now - timedelta(days=2), 3000.0, 3000.0)
        daemon.collect_once()
        deadlines = {d.role: d for d in rotation_deadlines(daemon.view.evaluation, settings)}
        text = generate_latest(daemon.registry).decode()
    finally:
        daemon.stop()
    measured_days = ENCRYPTED_FIELDS / (1800 / 48) / 24
    data = lab_copy.cert("DataEncryption", "new")
    expected = data.issued.cert.not_valid_after_utc - timedelta(days=30 + 10 + measured_days)
    assert deadlines["DataEncryption"].reencryption_days == pytest.approx(measured_days)
    assert deadlines["DataEncryption"].start_by.timestamp() == pytest.approx(expected.timestamp())
    assert sample(text, "certmon_reencryption_duration_seconds", basis="measured") == pytest.approx(
        measured_days * 86400
    )
    assert 'certmon_reencryption_duration_seconds{basis="configured"' not in text
