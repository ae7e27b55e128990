"""lcs-settings-applied from the running packages' settings on the nodes (sources.winrm.package_settings)."""

from __future__ import annotations

from collectors.base import Collector
from collectors.model import Observation
from collectors.winrm.packages import package_references, parse_package
from daemon.evaluator import Evaluation
from daemon.rotation import StepStatus
from simulator.labpackages import package_xml
from tests.daemon.scenarios import Scenario, static_source

AXSF = "C:\\ProgramData\\SF\\AOS1\\Fabric\\work\\Applications\\AXSFType_App1\\AXSF.Package.Current.xml"


def winrm_with_package(document: bytes) -> Collector:
    """The winrm source as AOS1 reports it: the package file parsed by certmon's own parser."""
    settings, problems = parse_package(document, f"AOS1 {AXSF}")
    assert problems == []
    return static_source("winrm", {"AOS1": Observation(references=package_references("AOS1", settings, "winrm"))})


def lcs_step(evaluation: Evaluation):  # type: ignore[no-untyped-def]
    state = evaluation.checklist.state("lcs-settings-applied")
    assert state is not None
    return state


def test_without_a_gateway_the_packages_tell_whether_the_settings_were_applied(scenario: Scenario) -> None:
    lab = scenario.lab
    assert lcs_step(scenario.collect()).status is StepStatus.UNKNOWN  # neither gateway nor package settings
    old = lcs_step(scenario.collect(extra=[winrm_with_package(package_xml(lab, "AOS", "old"))]))
    assert old.status is StepStatus.PENDING
    assert old.detail.startswith("the running applications still use old certificates: DataEncryption uses ")
    assert lab.cert("DataEncryption", "old").thumbprint in old.detail
    new = lcs_step(scenario.collect(extra=[winrm_with_package(package_xml(lab, "AOS", "new"))]))
    assert new.status is StepStatus.DONE, new.detail
