"""End to end: the demo, Prometheus with the shipped rules, Alertmanager, and the Grafana dashboard's queries.

Moving the running demo to removed-early (through its control endpoint, as `certmon demo
--set-stage` does) must get the critical CertmonDataEncryptionOldCertRemovedEarly alert to
Alertmanager within two collection cycles of the node that lost the certificate; the remedy
(back to re-encrypting: the certificate imported again) must resolve it. Cycles are counted
from the daemon's own per-target hook, not from wall-clock time. Then every query of every
panel of grafana/dashboards/*.json must return data from that Prometheus.
"""

from __future__ import annotations

import io
import json
import re
import threading
import urllib.parse
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

from simulator.control import request_stage
from simulator.demo import Demo, DemoOptions
from simulator.stages import REMOVED_EARLY_NODE
from tests.conftest import ROOT
from tests.e2e.peers import Service, Webhook, get_json, query, start_prometheus, wait_for

ALERT = "CertmonDataEncryptionOldCertRemovedEarly"
ENVIRONMENT = "demo"
# Time 10x: the lab's 60 s collection intervals become 6 s cycles, several scrapes and rule
# evaluations (1 s each) long, so "within two cycles" measures the pipeline, not luck.
SPEED = 10.0
MAX_CYCLES = 2
# certmon takes a re-encryption rate (and so an ETA) over at least a day of progress samples,
# and the batch job runs two hours a day: the dashboard's ETA panels need a simulated day.
FAST_SPEED = 3600.0
# Grafana's variables, as the dashboard substitutes them for one selected environment.
VARIABLES = {"environment": ENVIRONMENT, "__range": "5m", "__rate_interval": "1m", "__interval": "15s"}


class Cycles:
    """Completed collections of one source's target, counted by the daemon's per-target hook."""

    def __init__(self, demo: Demo, source: str, target: str) -> None:
        self.count = 0
        self._lock = threading.Lock()
        self._source, self._target = source, target
        demo.daemon.on_progress = self._done

    def _done(self, source: str, target: str, ok: bool) -> None:
        if (source, target) == (self._source, self._target):
            with self._lock:
                self.count += 1


@contextmanager
def _running(folder: Path, speed: float, alertmanager: Service) -> Iterator[tuple[Demo, Service]]:
    """A demo at re-encrypting running in this process, and Prometheus scraping it, up with data."""
    options = DemoOptions(directory=folder / "demo", port=0, stage="re-encrypting", speed=speed)
    with Demo(options, echo=lambda text: None) as demo:
        (folder / "prometheus").mkdir()
        service = start_prometheus(folder / "prometheus", demo.urls["metrics"], alertmanager, ENVIRONMENT)
        try:
            wait_for("the first scrape of the demo", lambda: query(service, 'up{job="certmon"} == 1'))
            yield demo, service
        finally:
            service.close()


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory, alertmanager: Service) -> Iterator[tuple[Demo, Service]]:
    """The demo at re-encrypting, time 10x, with its Prometheus."""
    with _running(tmp_path_factory.mktemp("e2e"), SPEED, alertmanager) as running:
        yield running


@pytest.fixture(scope="module")
def fast_stack(tmp_path_factory: pytest.TempPathFactory, alertmanager: Service) -> Iterator[tuple[Demo, Service]]:
    """The demo at re-encrypting with a simulated day every 24 s: re-encryption gets a rate and an ETA."""
    with _running(tmp_path_factory.mktemp("e2e-fast"), FAST_SPEED, alertmanager) as running:
        yield running


def _at_alertmanager(alertmanager: Service) -> list[dict[str, Any]]:
    alerts = get_json(f"{alertmanager.url}/api/v2/alerts?filter=" + urllib.parse.quote(f'alertname="{ALERT}"'))
    return [a for a in alerts if a["status"]["state"] == "active"]


def _move(demo: Demo, stage: str) -> None:
    assert demo.lab is not None
    out = io.StringIO()
    assert request_stage(demo.lab.root, stage, out) == stage, out.getvalue()


def test_removed_early_fires_at_alertmanager_within_two_cycles_and_the_remedy_clears_it(
    stack: tuple[Demo, Service], alertmanager: Service, webhook: Webhook
) -> None:
    demo, _prometheus = stack
    cycles = Cycles(demo, "winrm", REMOVED_EARLY_NODE)
    wait_for("a collection of AOS1", lambda: cycles.count >= 1)
    assert not _at_alertmanager(alertmanager), "the alert fired before the certificate was removed"

    _move(demo, "removed-early")
    removed_at = cycles.count
    firing = wait_for("the alert at Alertmanager", lambda: _at_alertmanager(alertmanager))
    fired_after = cycles.count - removed_at
    assert fired_after <= MAX_CYCLES, f"the alert reached Alertmanager after {fired_after} collection cycles"
    assert demo.lab is not None
    old = demo.lab.cert("DataEncryption", "old").thumbprint
    labels = firing[0]["labels"]
    assert (labels["severity"], labels["node"], labels["thumbprint"]) == ("critical", REMOVED_EARLY_NODE, old)
    assert labels["environment"] == ENVIRONMENT and labels["job"] == "certmon"
    notified = wait_for("the firing notification", lambda: webhook.alerts(ALERT, "firing"))
    assert REMOVED_EARLY_NODE in notified[0]["annotations"]["summary"]
    assert "Re-import the previous DataEncryption certificate" in notified[0]["annotations"]["action"]

    _move(demo, "re-encrypting")
    remedied_at = cycles.count
    wait_for("the alert to leave Alertmanager", lambda: not _at_alertmanager(alertmanager))
    cleared_after = cycles.count - remedied_at
    assert cleared_after <= MAX_CYCLES, f"the alert cleared after {cleared_after} collection cycles"
    resolved = wait_for("the resolved notification", lambda: webhook.alerts(ALERT, "resolved"))
    assert resolved[0]["labels"]["node"] == REMOVED_EARLY_NODE


def _panels(panels: list[dict[str, Any]]) -> Iterator[dict[str, Any]]:
    for panel in panels:
        yield panel
        # Rows hold their panels when collapsed.
        yield from _panels(panel.get("panels", []))


def _expressions() -> list[tuple[str, str, str]]:
    found = []
    for path in sorted((ROOT / "grafana" / "dashboards").glob("*.json")):
        dashboard = json.loads(path.read_text(encoding="utf-8"))
        for panel in _panels(dashboard.get("panels", [])):
            for target in panel.get("targets", []):
                if target.get("expr"):
                    found.append((path.name, f"{panel['title']} [{target.get('refId', '?')}]", target["expr"]))
    return found


def _substitute(expr: str) -> str:
    def value(match: re.Match[str]) -> str:
        name = match.group(1) or match.group(2)
        assert name in VARIABLES, f"unknown dashboard variable ${name} in {expr}"
        return VARIABLES[name]

    return re.sub(r"\$\{(\w+)\}|\$(\w+)", value, expr)


def test_the_dashboard_has_queries() -> None:
    assert len(_expressions()) > 20


def test_the_environment_variable_lists_the_demo(stack: tuple[Demo, Service]) -> None:
    _demo, prometheus = stack
    match = urllib.parse.quote("certmon_last_evaluation_timestamp_seconds")
    answer = get_json(f"{prometheus.url}/api/v1/label/environment/values?match[]={match}")
    assert answer["data"] == [ENVIRONMENT]


def test_every_panel_query_returns_data(fast_stack: tuple[Demo, Service]) -> None:
    # Re-encrypting, after a simulated day of it: the stage where every panel has something to
    # show, the re-encryption rate and ETA included.
    demo, prometheus = fast_stack
    assert demo.rotation is not None and demo.rotation.stage == "re-encrypting"
    empty: list[str] = []

    def all_answer() -> bool:
        empty.clear()
        for dashboard, panel, expr in _expressions():
            if not query(prometheus, _substitute(expr)):
                empty.append(f"{dashboard}: {panel}: {expr}")
        return not empty

    try:
        wait_for("every panel to have data", all_answer, every=2.0)
    except AssertionError:
        pytest.fail("panels without data:\n" + "\n".join(empty))


def test_prometheus_loaded_the_shipped_rules(stack: tuple[Demo, Service]) -> None:
    _demo, prometheus = stack
    groups = get_json(f"{prometheus.url}/api/v1/rules")["data"]["groups"]
    names = {rule["name"] for group in groups for rule in group["rules"]}
    assert ALERT in names and "CertmonAbsent" in names
    assert all(group["file"].endswith("rules.yml") for group in groups)
