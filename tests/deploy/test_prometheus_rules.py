"""deploy/prometheus/rules.yml: promtool check and unit tests, every alert firing and not firing."""

from __future__ import annotations

import re
import shutil
import subprocess
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
import yaml

from daemon.metrics import FINDING_LABELS, build_families
from daemon.rotation import STEPS
from daemon.rules import CATALOGUE
from simulator.lab import Lab
from tests.conftest import ROOT
from tests.daemon.scenarios import Scenario

PROMTOOL = shutil.which("promtool")
RULES = ROOT / "deploy" / "prometheus" / "rules.yml"
TESTS = ROOT / "deploy" / "prometheus" / "rules_test.yml"

pytestmark = pytest.mark.skipif(PROMTOOL is None, reason="promtool (Debian package prometheus) is not installed")


def _load(path: Path) -> Any:
    return yaml.safe_load(path.read_text(encoding="utf-8"))


def _alerts() -> dict[str, dict[str, Any]]:
    return {rule["alert"]: rule for group in _load(RULES)["groups"] for rule in group["rules"] if "alert" in rule}


def test_promtool_check_rules_is_clean() -> None:
    done = subprocess.run([PROMTOOL, "check", "rules", str(RULES)], capture_output=True, text=True, check=False)
    assert done.returncode == 0, done.stdout + done.stderr
    assert f"SUCCESS: {len(_alerts())} rules found" in done.stdout
    assert "WARNING" not in done.stdout + done.stderr


def test_promtool_unit_tests_pass() -> None:
    done = subprocess.run([PROMTOOL, "test", "rules", str(TESTS)], capture_output=True, text=True, check=False)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "SUCCESS" in done.stdout


def test_every_alert_is_tested_firing_and_not_firing() -> None:
    firing: set[str] = set()
    silent: set[str] = set()
    for group in _load(TESTS)["tests"]:
        for case in group.get("alert_rule_test", []):
            (firing if case.get("exp_alerts") else silent).add(case["alertname"])
    alerts = set(_alerts())
    assert alerts - firing == set(), "alerts never tested firing"
    assert alerts - silent == set(), "alerts never tested silent"


def test_every_alert_says_what_to_do() -> None:
    for name, rule in _alerts().items():
        annotations = rule["annotations"]
        assert {"summary", "description", "action"} <= set(annotations), name
        step = annotations.get("runbook_step")
        if step and "{{" not in step:
            assert step in {s.id for s in STEPS}, (name, step)


def test_every_critical_finding_has_its_own_alert() -> None:
    selected = {
        m.group(1)
        for rule in _alerts().values()
        for m in re.finditer(r'certmon_finding\{rule="([^"]+)"\}', rule["expr"])
    }
    critical = {info.id for info in CATALOGUE if info.severity == "critical"}
    assert critical - selected == set()
    catch_all = _alerts()["CertmonFinding"]["expr"]
    excluded = set(re.search(r'rule!~"([^"]+)"', catch_all).group(1).split("|"))  # type: ignore[union-attr]
    # source-down and source-problems have alerts on the source metrics themselves (CertmonSourceDown/Problems).
    assert excluded == selected | {"source-down", "source-problems"}, (
        "the catch-all must exclude exactly the rules with their own alert"
    )
    assert {info.id for info in CATALOGUE} <= excluded | {"source-down"}


def test_rules_use_metrics_and_labels_certmon_exports(lab_copy: Lab, now: datetime) -> None:
    """Every certmon_* name in the rules is exported by the daemon on the lab; the label names exist."""
    scenario = Scenario(lab_copy, now)
    scenario.lab.localagent_config.write_text("{")  # a failing source, so the source metrics all exist
    evaluation = scenario.collect()
    names = {family.name for family in build_families(evaluation, {})}
    names |= {f"{name}_total" for name in names}
    used = set(re.findall(r"\bcertmon_[a-z_]+", RULES.read_text()))
    assert used - names == set()
    for name in re.findall(r"\$labels\.(\w+)", RULES.read_text()):
        # reason: certmon_source_problems' label; instance: the scrape target's, on `up`.
        assert name in (*FINDING_LABELS, "environment", "source", "target", "reason", "instance"), name
