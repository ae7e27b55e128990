"""sf-secondary-lingering: a ThumbprintSecondary nothing needs any more blocks the next rotation."""

from __future__ import annotations

from collectors.agentconfig import AgentConfig
from collectors.model import Observation, Severity
from daemon.evaluator import evaluate
from daemon.rotation import STEPS, Step, StepStatus, Verdict
from tests.daemon.scenarios import Scenario, findings, static_source

RULE = "sf-secondary-lingering"


def _no_rotation(settings) -> None:  # type: ignore[no-untyped-def]
    settings.sources.configtemplate.infrastructure_old = None


def test_secondary_of_the_rotation_in_progress_is_expected(scenario: Scenario) -> None:
    assert findings(scenario.collect(), RULE) == []


def test_secondary_left_over_after_the_rotation(scenario: Scenario) -> None:
    evaluation = scenario.collect(edit=_no_rotation)
    (finding,) = findings(evaluation, RULE)
    old = scenario.lab.cert("ServiceFabric", "old").thumbprint
    assert (finding.thumbprint, finding.role, finding.severity) == (old, "ServiceFabric", Severity.WARNING)
    assert (finding.source, finding.target, finding.step) == ("clusterconfig", "ClusterConfig.json", "sf-cleaned")
    assert finding.remediation == "sf-cleanup-old-certs", "the finding names the remediation that fixes it"
    assert "cluster, server, reverse_proxy" in finding.message and "refuses the next rotation" in finding.message


def test_no_secondary_no_finding(scenario: Scenario) -> None:
    scenario.clean_cluster()
    assert findings(scenario.collect(edit=_no_rotation), RULE) == []


def test_unknown_templates_conclude_nothing(scenario: Scenario) -> None:
    def no_templates(settings) -> None:  # type: ignore[no-untyped-def]
        settings.sources.configtemplate.infrastructure = None

    assert findings(scenario.collect(edit=no_templates), RULE) == []


def _share_config(scenario: Scenario, generation: str):  # type: ignore[no-untyped-def]
    facts = AgentConfig(
        "\\\\DC1\\D365FFOStorage\\agent\\wp\\config.json",
        "10.0.0.11:19000",
        "d365fo-onprem-cluster",
        scenario.lab.cert("ServiceFabric", generation).thumbprint,
        scenario.lab.cert("ServiceFabricClient", generation).thumbprint,
    )
    return static_source("shareconfig", {"config.json": Observation(facts=facts)})


def test_secondary_lingers_once_every_step_that_needs_it_is_done(scenario: Scenario) -> None:
    """The second form of evidence: the ConfigTemplate pair names it, and the rotation is otherwise complete.

    The upgrade status comes from the Service Fabric gateway source, which lands later; here a
    step implementation reports it the way that source will, through the STEPS registry.
    """
    scenario.localagent_to("new")
    scenario.share_config_to("new")
    evaluation = scenario.collect()
    states = {s.step: s.status for s in evaluation.checklist.steps}
    assert states["localagent-updated"] is StepStatus.DONE
    assert states["deployment-config-updated"] is StepStatus.DONE
    assert states["sf-upgraded"] is StepStatus.UNKNOWN
    assert findings(evaluation, RULE) == [], "the upgrade may still be rolling: the secondary is still needed"

    def upgraded(ctx, states):  # type: ignore[no-untyped-def]
        return Verdict(StepStatus.DONE, "RollingForwardCompleted for configuration 2.0.1")

    steps = [Step(s.id, s.title, upgraded) if s.id == "sf-upgraded" else s for s in STEPS]
    settings = scenario.settings()
    history = []  # type: ignore[var-annotated]
    later = evaluate(evaluation.snapshot, history, scenario.now, settings, steps=steps)
    later_states = {s.step: s.status for s in later.checklist.steps}
    assert not later_states["reencryption-complete"].satisfied
    # Regression (issue 16, gate 5): the Service Fabric steps are done but re-encryption still runs;
    # the runbook keeps the secondary until the final clean-up, so it is not lingering yet.
    assert findings(later, RULE) == []

    ids = [s.id for s in STEPS]
    before_cleanup = set(ids[: ids.index("sf-cleaned")])
    finished = [Step(s.id, s.title, upgraded) if s.id in before_cleanup else s for s in STEPS]
    final = evaluate(evaluation.snapshot, [], scenario.now, settings, steps=finished)
    (finding,) = findings(final, RULE)
    assert "otherwise complete" in finding.message
