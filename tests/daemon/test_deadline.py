"""certmon_rotation_start_by_timestamp_seconds on the lab: notAfter − 30 days − re-encryption days − lead days."""

from __future__ import annotations

from datetime import datetime, timedelta

from prometheus_client import generate_latest

from daemon.app import Daemon
from daemon.deadline import rotation_deadlines
from daemon.settings import Settings
from simulator.lab import Lab
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
