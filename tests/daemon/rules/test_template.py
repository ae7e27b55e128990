"""config-template-schema-changed: a new ConfigTemplate.xml schema whose content was not migrated."""

from __future__ import annotations

from xml.etree import ElementTree as ET

from collectors.model import Severity
from tests.daemon.scenarios import Scenario, findings

RULE = "config-template-schema-changed"


def _version(version: str, *, strip_vms: bool = False):  # type: ignore[no-untyped-def]
    def change(root: ET.Element) -> None:
        element = root.find("Schema/Version")
        assert element is not None
        element.text = version
        if strip_vms:
            for vm_list in root.iter("VMList"):
                for vm in list(vm_list):
                    vm_list.remove(vm)

    return change


def test_same_schema_is_fine(scenario: Scenario) -> None:
    assert findings(scenario.collect(), RULE) == []


def test_new_schema_fresh_from_the_download(scenario: Scenario) -> None:
    scenario.edit_template(scenario.lab.infrastructure, _version("2.18", strip_vms=True))
    evaluation = scenario.collect()
    (finding,) = findings(evaluation, RULE)
    assert finding.severity is Severity.WARNING and finding.step == "scripts-updated"
    assert "from 2.17 (InfrastructureOld) to 2.18 (Infrastructure)" in finding.message
    assert "VM ORCH1" in finding.message
    scripts = evaluation.checklist.state("scripts-updated")
    assert scripts is not None and scripts.status == "pending" and "migrate it to the new schema" in scripts.detail


def test_new_schema_migrated(scenario: Scenario) -> None:
    scenario.edit_template(scenario.lab.infrastructure, _version("2.18"))
    evaluation = scenario.collect()
    assert findings(evaluation, RULE) == []
    scripts = evaluation.checklist.state("scripts-updated")
    assert scripts is not None and scripts.status == "done" and "migrated from schema 2.17 to 2.18" in scripts.detail


def test_older_schema_in_infrastructure(scenario: Scenario) -> None:
    scenario.edit_template(scenario.lab.infrastructure, _version("2.9"))
    (finding,) = findings(scenario.collect(), RULE)
    assert "swapped" in finding.message
