"""Findings raised and cleared reach the service log, bounded per evaluation."""

from __future__ import annotations

import logging
from datetime import datetime

import pytest

from collectors.model import Finding, Severity
from daemon.app import Daemon
from daemon.findinglog import FindingLog
from daemon.settings import Settings
from simulator.lab import Lab


def test_a_daemon_logs_a_critical_finding_when_it_appears_and_when_it_clears(
    lab: Lab, lab_settings: Settings, now: datetime, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="certmon.findings")
    daemon = Daemon(lab_settings, clock=lambda: now)
    try:
        daemon.collect_once()
        assert not [r for r in caplog.records if r.name == "certmon.findings"], "one-shot commands do not log findings"
        daemon.log_findings()  # what a scheduled daemon does when it starts
        first = daemon.publish().evaluation
        raised = [r for r in caplog.records if r.getMessage().startswith("finding raised:")]
        assert len(raised) == min(len(first.findings), 50)
        critical = next(f for f in first.findings if f.severity is Severity.CRITICAL)
        line = next(r for r in raised if f"{critical.rule} [critical]" in r.getMessage())
        assert line.levelno == logging.ERROR and critical.message in line.getMessage()
        caplog.clear()
        daemon.publish()
        assert not [r for r in caplog.records if r.name == "certmon.findings"], "nothing changed, nothing logged"
        lab.localagent_config.write_text("{")  # the source fails: a new warning
        daemon.collect_once()
        new = [r.getMessage() for r in caplog.records if r.name == "certmon.findings"]
        assert any(m.startswith("finding raised: source-down [warning]") for m in new), new
    finally:
        daemon.stop()


def test_the_log_is_bounded_and_counts_the_rest(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="certmon.findings")
    findings = [
        Finding("cert-expiry-warning", Severity.WARNING, f"expires {i}", thumbprint=f"{i:040X}") for i in range(120)
    ]
    log = FindingLog(limit=10)
    assert log.update(findings) == (120, 0)
    messages = [r.getMessage() for r in caplog.records]
    assert len(messages) == 11 and messages[-1] == "110 more findings raised or cleared (see certmon status)"
    caplog.clear()
    assert log.update(findings[:100]) == (0, 20)
    assert (
        sum(
            m.startswith("finding cleared: cert-expiry-warning [warning] thumbprint=")
            for m in (r.getMessage() for r in caplog.records)
        )
        == 10
    )
