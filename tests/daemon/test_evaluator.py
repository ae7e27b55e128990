"""First findings: per-role expiry windows, expired, not yet valid, source down."""

from __future__ import annotations

from datetime import datetime, timedelta

import pytest

from collectors.model import Severity, Snapshot
from daemon.app import Daemon
from daemon.evaluator import evaluate
from daemon.settings import ExpiryWindow, Settings
from simulator.lab import Lab


@pytest.fixture
def snapshot(lab_settings: Settings, now: datetime) -> Snapshot:
    daemon = Daemon(lab_settings, clock=lambda: now)
    try:
        daemon.collect_once()
        return daemon.runner.snapshot()
    finally:
        daemon.stop()


def _rules(snapshot: Snapshot, settings: Settings, at: datetime) -> dict[tuple[str, str, str], Severity]:
    evaluation = evaluate(snapshot, [], at, settings)
    return {(f.rule, f.role, f.thumbprint): f.severity for f in evaluation.findings}


def test_role_windows(snapshot: Snapshot, lab_settings: Settings, lab: Lab, now: datetime) -> None:
    found = _rules(snapshot, lab_settings, now)
    old_de = lab.cert("DataEncryption", "old").thumbprint
    old_sign = lab.cert("DataSigning", "old").thumbprint
    old_sess = lab.cert("SessionAuthentication", "old").thumbprint
    # DataEncryption: 25 days left inside its 30-day critical window.
    assert found[("cert-expiry-critical", "DataEncryption", old_de)] is Severity.CRITICAL
    # DataSigning: 60 days left, outside the default 30-day warning window.
    assert not any(key[2] == old_sign for key in found)
    # SessionAuthentication: 35 days, outside 30; RSAT new: 25 days, inside the default warning window.
    assert not any(key[2] == old_sess for key in found)
    assert found[("cert-expiry-warning", "RSAT", lab.cert("RSAT", "new").thumbprint)] is Severity.WARNING
    # The encipherment certificate uses the long window: 75 days left is a warning.
    enc = lab.cert("ServiceFabricEncryption", "old").thumbprint
    assert found[("cert-expiry-warning", "ServiceFabricEncryption", enc)] is Severity.WARNING


def test_windows_are_configurable(snapshot: Snapshot, lab_settings: Settings, lab: Lab, now: datetime) -> None:
    settings = lab_settings.model_copy(
        update={
            "expiry": {
                "DataEncryption": ExpiryWindow(warning_days=120, critical_days=10),
                "DataSigning": ExpiryWindow(warning_days=70, critical_days=65),
            }
        }
    )
    found = _rules(snapshot, settings, now)
    assert ("cert-expiry-warning", "DataEncryption", lab.cert("DataEncryption", "old").thumbprint) in found
    assert ("cert-expiry-critical", "DataSigning", lab.cert("DataSigning", "old").thumbprint) in found


def test_expired_and_not_yet_valid(snapshot: Snapshot, lab_settings: Settings, lab: Lab, now: datetime) -> None:
    later = _rules(snapshot, lab_settings, now + timedelta(days=13))
    old_sf = lab.cert("ServiceFabric", "old").thumbprint
    assert later[("cert-expired", "ServiceFabric", old_sf)] is Severity.CRITICAL
    assert ("cert-expiry-critical", "ServiceFabric", old_sf) not in later
    earlier = _rules(snapshot, lab_settings, now - timedelta(days=3))
    new_de = lab.cert("DataEncryption", "new").thumbprint
    assert earlier[("cert-not-yet-valid", "DataEncryption", new_de)] is Severity.WARNING


def test_unreferenced_certificates_can_be_ignored(
    snapshot: Snapshot, lab_settings: Settings, lab: Lab, now: datetime
) -> None:
    far = now + timedelta(days=2100)
    assert ("cert-expired", "", lab.ca.thumbprint) in _rules(snapshot, lab_settings, far)
    quiet = lab_settings.model_copy(update={"unreferenced_certificates": False})
    assert ("cert-expired", "", lab.ca.thumbprint) not in _rules(snapshot, quiet, far)


def test_source_down_names_the_target_and_the_reason(lab: Lab, lab_settings: Settings, now: datetime) -> None:
    lab.localagent_config.write_text("{")
    daemon = Daemon(lab_settings, clock=lambda: now)
    try:
        evaluation = daemon.collect_once().evaluation
    finally:
        daemon.stop()
    (down,) = [f for f in evaluation.findings if f.rule == "source-down"]
    assert (down.source, down.target, down.severity) == ("localagent", "localagent-config.json", Severity.WARNING)
    assert "parse_error" in down.message and "no data yet" in down.message


def test_a_wrong_pfx_password_is_a_source_problems_finding(lab: Lab, lab_settings: Settings, now: datetime) -> None:
    """A source that is up but reads nothing of what it was pointed at is never silent (no blind green)."""
    daemon = Daemon(lab_settings, clock=lambda: now)
    try:
        healthy = daemon.collect_once().evaluation
    finally:
        daemon.stop()
    assert [f for f in healthy.findings if f.rule == "source-problems"] == []
    lab.password_file.write_text("not-the-pfx-password\n")
    daemon = Daemon(lab_settings, clock=lambda: now)
    try:
        evaluation = daemon.collect_once().evaluation
    finally:
        daemon.stop()
    problems = [f for f in evaluation.findings if f.rule == "source-problems"]
    assert problems and all(f.source == "certfolder" and f.severity is Severity.WARNING for f in problems)
    assert all(r.health.ok for r in evaluation.snapshot.of_source("certfolder")), "the folders were readable"
    assert "could not read" in problems[0].message and ".pfx" in problems[0].message.lower()
    assert "not-the-pfx-password" not in " ".join(f.message for f in evaluation.findings)


def test_findings_are_sorted_critical_first(snapshot: Snapshot, lab_settings: Settings, now: datetime) -> None:
    severities = [f.severity for f in evaluate(snapshot, [], now, lab_settings).findings]
    order = {Severity.CRITICAL: 0, Severity.WARNING: 1, Severity.INFO: 2}
    assert severities == sorted(severities, key=order.__getitem__)


def test_the_expiry_of_a_certificate_being_rotated_out_is_told_apart(
    snapshot: Snapshot, lab_settings: Settings, lab: Lab, now: datetime
) -> None:
    """Issue 17: a previous-generation certificate's expiry names its successor; a current one's does not."""
    findings = evaluate(snapshot, [], now, lab_settings).findings
    old = lab.cert("DataEncryption", "old").thumbprint
    new = lab.cert("DataEncryption", "new").thumbprint
    (outgoing,) = [f for f in findings if f.rule.startswith("cert-expiry") and f.thumbprint == old and f.role]
    assert f"previous generation, being rotated out to {new}" in outgoing.message
    current = [f for f in findings if f.rule.startswith("cert-expiry") and f.thumbprint == new]
    assert all("previous generation" not in f.message for f in current)
