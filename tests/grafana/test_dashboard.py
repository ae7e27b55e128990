"""grafana/dashboards/certmon.json: Grafana's schema, valid PromQL, and data from a real Prometheus."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import time
import urllib.parse
import urllib.request
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
import yaml

from daemon.app import Daemon
from daemon.metrics import build_families
from daemon.sources.registry import build_collectors
from simulator.lab import Lab
from tests.conftest import ROOT, free_port
from tests.daemon.scenarios import Scenario

DASHBOARD = ROOT / "grafana" / "dashboards" / "certmon.json"
CHECKER = Path(__file__).parent
NODE = shutil.which("node")
PROMTOOL = shutil.which("promtool")
PROMETHEUS = shutil.which("prometheus")

# Metrics the dashboard shows that the SQL and Service Fabric gateway sources export (issues 5
# and 6); every other certmon_* name must come from the exporter as it is today.
FROM_LATER_SOURCES = {
    "certmon_reencryption_progress_ratio",
    "certmon_reencryption_eta_timestamp_seconds",
    "certmon_reencryption_flight_enabled",
    "certmon_reencryption_config_enabled",
    "certmon_sf_upgrade_state_info",
    "certmon_sf_rotation_supported",
    "certmon_sf_code_version_info",
}


def _dashboard() -> dict[str, Any]:
    return dict(json.loads(DASHBOARD.read_text(encoding="utf-8")))


def _panels(dashboard: dict[str, Any]) -> Iterator[dict[str, Any]]:
    for panel in dashboard["panels"]:
        yield panel
        yield from panel.get("panels", [])


def _queries(dashboard: dict[str, Any]) -> Iterator[tuple[str, str]]:
    for panel in _panels(dashboard):
        for target in panel.get("targets", []):
            yield panel["title"], target["expr"]


def _concrete(expr: str, environment: str = ".*") -> str:
    """A panel query with Grafana's variables replaced the way Grafana does before sending it."""
    return expr.replace("$environment", environment).replace("$__range", "10m")


@pytest.fixture(scope="session")
def checker() -> Path:
    """The validator with its npm packages installed (offline afterwards)."""
    if NODE is None:
        pytest.skip("node is not installed (Debian package nodejs)")
    if not (CHECKER / "node_modules" / "@grafana" / "schema").is_dir():
        subprocess.run([str(ROOT / "scripts" / "node-packages")], check=True, timeout=600)
    return CHECKER / "validate-dashboard.mjs"


def _validate(checker: Path, path: Path) -> tuple[int, list[dict[str, Any]]]:
    assert NODE is not None
    done = subprocess.run([NODE, str(checker), str(path)], capture_output=True, text=True, check=False, timeout=300)
    assert done.stdout, done.stderr
    return done.returncode, json.loads(done.stdout)


def test_dashboard_matches_grafana_schema(checker: Path) -> None:
    code, (report,) = _validate(checker, DASHBOARD)
    assert report["errors"] == [] and code == 0
    assert report["panels"] == 31
    assert set(report["panelTypes"]) == {"row", "stat", "table", "bargauge", "timeseries"}
    dashboard = _dashboard()
    assert [i["name"] for i in dashboard["__inputs"]] == ["DS_PROMETHEUS"], "imports grafana.com style"
    assert {link["url"] for link in dashboard["links"]} == {"${status_url}"}, "links to the status page"


def test_the_validator_checks_the_import_header(checker: Path, tmp_path: Path) -> None:
    dashboard = _dashboard()
    dashboard["__requires"] = [r for r in dashboard["__requires"] if r["id"] != "table"]
    dashboard["__inputs"][0]["pluginId"] = ""
    broken = tmp_path / "broken.json"
    broken.write_text(json.dumps(dashboard))
    code, (report,) = _validate(checker, broken)
    assert code == 1
    assert "__requires: panel type table missing" in report["errors"]
    assert any("needs pluginId" in e for e in report["errors"])


def test_the_validator_rejects_what_grafana_rejects(checker: Path, tmp_path: Path) -> None:
    dashboard = _dashboard()
    table = next(p for p in _panels(dashboard) if p["title"] == "Findings" and p["type"] == "table")
    table["options"]["colour"] = "red"  # not a table option
    table["gridPos"]["w"] = 30  # wider than the 24-column grid
    dashboard["templating"]["list"][1]["refresh"] = "always"  # an enum of numbers
    dashboard["panels"][1]["id"] = dashboard["panels"][2]["id"]
    broken = tmp_path / "broken.json"
    broken.write_text(json.dumps(dashboard))
    code, (report,) = _validate(checker, broken)
    text = "\n".join(report["errors"])
    assert code == 1
    assert "options: / must NOT have additional properties: colour" in text
    assert 'panel 29 "Findings" (table): bad gridPos' in text
    assert "/templating/list/1/refresh" in text
    assert "duplicate id" in text


def test_variables_and_panels_the_operators_need() -> None:
    dashboard = _dashboard()
    variables = {v["name"]: v for v in dashboard["templating"]["list"]}
    assert variables["datasource"]["type"] == "datasource" and variables["datasource"]["query"] == "prometheus"
    assert variables["environment"]["multi"] and "environment" in variables["environment"]["query"]["query"]
    titles = {p["title"] for p in _panels(dashboard)}
    assert {
        "Certificates by role and time left",
        "Presence: node × role",
        "Rotation checklist",
        "Old certificates",
        "Re-encryption progress",
        "Re-encryption ETA",
        "Old DataEncryption certificate expires",
        "Margin: old certificate expiry − ETA",
        "Cluster configuration certificates",
        "Configuration upgrade state",
        "Source health",
        "Findings",
        "Rotate-by deadline per role",
        "Re-encryption duration used",
    } <= titles
    for title, expr in _queries(dashboard):
        assert 'environment=~"$environment"' in expr, title


@pytest.mark.skipif(PROMTOOL is None, reason="promtool (Debian package prometheus) is not installed")
def test_every_query_is_valid_promql(tmp_path: Path) -> None:
    rules = [
        {"record": f"certmon:dashboard_query_{i}", "expr": _concrete(expr)}
        for i, (_title, expr) in enumerate(_queries(_dashboard()))
    ]
    path = tmp_path / "queries.yml"
    path.write_text(yaml.safe_dump({"groups": [{"name": "dashboard", "rules": rules}]}))
    done = subprocess.run([str(PROMTOOL), "check", "rules", str(path)], capture_output=True, text=True, check=False)
    assert done.returncode == 0, done.stdout + done.stderr


def test_queries_use_metrics_certmon_exports(lab_copy: Lab, now: datetime) -> None:
    scenario = Scenario(lab_copy, now)
    evaluation = scenario.collect()
    collectors = {c.name: c for c in build_collectors(scenario.settings())}
    exported = {family.name for family in build_families(evaluation, collectors)}
    exported |= {f"{name}_total" for name in exported}
    used = {name for _title, expr in _queries(_dashboard()) for name in re.findall(r"\bcertmon_[a-z_]+", expr)}
    assert used - exported - FROM_LATER_SOURCES == set()


def _get(url: str) -> Any:
    with urllib.request.urlopen(url, timeout=10) as response:
        return json.loads(response.read())


@pytest.mark.skipif(PROMETHEUS is None, reason="prometheus (Debian package prometheus) is not installed")
def test_panels_return_data_from_a_real_prometheus(lab_copy: Lab, now: datetime, tmp_path: Path) -> None:
    """Debian's Prometheus scrapes a daemon on the lab; every query on certmon's own metrics returns series."""
    settings = Scenario(lab_copy, now).settings()
    daemon = Daemon(settings)
    daemon.collect_once()
    daemon.start(schedule=False)
    assert daemon.http is not None
    port = free_port()
    config = tmp_path / "prometheus.yml"
    config.write_text(
        yaml.safe_dump(
            {
                "global": {"scrape_interval": "1s", "evaluation_interval": "1s"},
                "scrape_configs": [
                    {"job_name": "certmon", "static_configs": [{"targets": [daemon.http.url.split("//", 1)[1]]}]}
                ],
            }
        )
    )
    server = subprocess.Popen(
        [
            str(PROMETHEUS),
            f"--config.file={config}",
            f"--storage.tsdb.path={tmp_path / 'tsdb'}",
            f"--web.listen-address=127.0.0.1:{port}",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    api = f"http://127.0.0.1:{port}/api/v1/query?query="
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                if _get(api + urllib.parse.quote("certmon_finding"))["data"]["result"]:
                    break
            except OSError:
                pass
            assert time.monotonic() < deadline, "Prometheus did not scrape certmon within 60 s"
            time.sleep(0.5)
        empty = []
        for panel in _panels(_dashboard()):
            exprs = [_concrete(t["expr"], "demo") for t in panel.get("targets", [])]
            answers = [_get(api + urllib.parse.quote(expr)) for expr in exprs]
            assert all(a["status"] == "success" for a in answers), (panel["title"], answers)
            later_source = any(name in expr for expr in exprs for name in FROM_LATER_SOURCES)
            if exprs and not any(a["data"]["result"] for a in answers) and not later_source:
                empty.append(panel["title"])
        assert empty == [], "panels without data"
        matrix = _get(api + urllib.parse.quote(_concrete(next(e for t, e in _queries(_dashboard()) if "node" in t))))
        cells = {(r["metric"]["node"], r["metric"]["role"]): float(r["value"][1]) for r in matrix["data"]["result"]}
        assert cells[("AOS1", "DataEncryption")] == 2.0 and ("BI1", "DataEncryption") not in cells
    finally:
        server.terminate()
        server.wait(timeout=30)
        daemon.stop()
