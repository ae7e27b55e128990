"""The `agent-config-thumbprint-stale` finding on the lab, before and after staging."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

from daemon.app import Daemon
from daemon.settings import load_settings
from simulator.lab import Lab


def _findings(config: Path, now: datetime) -> list:  # type: ignore[type-arg]
    settings = load_settings(config)
    settings.sources.certfolder.nodes = ["ORCH1"]
    daemon = Daemon(settings, clock=lambda: now)
    try:
        view = daemon.collect_once()
    finally:
        daemon.stop()
    # The agent share's config.json has its own findings of the same rule (tests/daemon/rules/test_reencryption.py).
    return [
        f for f in view.evaluation.findings if f.rule == "agent-config-thumbprint-stale" and f.source == "localagent"
    ]


def test_staged_cluster_makes_the_agent_config_stale(lab_copy: Lab, now: datetime) -> None:
    findings = _findings(lab_copy.config_file, now)
    old_server = lab_copy.cert("ServiceFabric", "old").thumbprint
    new_server = lab_copy.cert("ServiceFabric", "new").thumbprint
    assert [(f.role, f.thumbprint) for f in findings] == [
        ("ServiceFabric", old_server),
        ("ServiceFabricClient", lab_copy.cert("ServiceFabricClient", "old").thumbprint),
    ]
    first = findings[0]
    assert (first.severity, first.source, first.target) == ("warning", "localagent", "localagent-config.json")
    assert (first.step, first.remediation) == ("localagent-updated", "localagent-config-update")
    assert f"serverCertThumbprint is {old_server} but the cluster uses {new_server}" in first.message


def test_no_finding_before_the_rotation(lab_before: Lab, now: datetime) -> None:
    lab = lab_before
    assert _findings(lab.config_file, now) == []
