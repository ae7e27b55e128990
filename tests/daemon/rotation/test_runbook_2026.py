"""The current runbook: the agent share's config.json step only for LocalAgent 3.2.2 and earlier (issue 15, item 11)."""

from __future__ import annotations

from datetime import datetime

import pytest

from daemon.rotation import StepStatus
from simulator.lab import Lab
from simulator.servicefabric import lab_applications
from tests.sfkit import sf_lab


def _with_localagent(lab: Lab, version: str) -> list[dict[str, object]]:
    apps = lab_applications(lab)
    for app in apps:
        if app["Name"] == "fabric:/LocalAgent":
            app["TypeVersion"] = version
    return apps


@pytest.mark.parametrize(("version", "applicable"), [("3.2.2", True), ("3.3.0", False)])
def test_deployment_config_step_follows_the_running_localagent(
    lab_copy: Lab, now: datetime, version: str, applicable: bool
) -> None:
    with sf_lab(lab_copy) as sf:
        sf.cluster.applications = _with_localagent(lab_copy, version)
        daemon = sf.daemon(sf.settings(), now)
        try:
            state = daemon.view.evaluation.checklist.state("deployment-config-updated")
        finally:
            daemon.stop()
    assert state is not None
    if applicable:
        assert state.status is not StepStatus.NOT_APPLICABLE, state
    else:
        assert state.status is StepStatus.NOT_APPLICABLE
        assert state.detail == (
            "the running LocalAgent is 3.3.0 (fabric:/LocalAgent): the agent share's config.json step is only "
            "needed for LocalAgent 3.2.2 and earlier"
        )
