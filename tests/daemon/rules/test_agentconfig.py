"""agent-config-thumbprint-stale for localagent-config.json and the agent share's config.json."""

from __future__ import annotations

from datetime import datetime

from collectors.model import Severity
from simulator.lab import Lab
from tests.daemon.scenarios import Scenario, findings

RULE = "agent-config-thumbprint-stale"


def test_staged_cluster_leaves_the_local_agent_behind(scenario: Scenario) -> None:
    stale = [f for f in findings(scenario.collect(), RULE) if f.source == "localagent"]
    old_server = scenario.lab.cert("ServiceFabric", "old").thumbprint
    old_client = scenario.lab.cert("ServiceFabricClient", "old").thumbprint
    assert [(f.role, f.thumbprint) for f in stale] == [
        ("ServiceFabric", old_server),
        ("ServiceFabricClient", old_client),
    ]
    first = stale[0]
    assert (first.severity, first.source, first.target) == (Severity.WARNING, "localagent", "localagent-config.json")
    assert (first.step, first.remediation) == ("localagent-updated", "localagent-config-update")
    new_server = scenario.lab.cert("ServiceFabric", "new").thumbprint
    assert f"serverCertThumbprint is {old_server} but the cluster uses {new_server}" in first.message


def test_updated_local_agent_is_fine(scenario: Scenario) -> None:
    scenario.localagent_to("new")
    assert [f.source for f in findings(scenario.collect(), RULE)] == ["agentshare", "agentshare"]
    scenario.share_config_to("new")
    assert findings(scenario.collect(), RULE) == []


def test_before_the_rotation_the_agent_follows_the_cluster(lab_before: Lab, now: datetime) -> None:
    lab = lab_before
    assert findings(Scenario(lab, now).collect(), RULE) == []


def test_share_config_is_checked_the_same_way(scenario: Scenario) -> None:
    scenario.localagent_to("new")
    scenario.share_config_to("new")

    def server_still_old(document) -> None:  # type: ignore[no-untyped-def]
        old = scenario.lab.cert("ServiceFabric", "old").thumbprint
        document["serviceFabric"]["certificateSettings"]["serverCertThumbprint"] = old

    scenario.edit_json(scenario.lab.share_config, server_still_old)
    (stale,) = findings(scenario.collect(), RULE)
    assert (stale.source, stale.target, stale.role) == ("agentshare", "config.json", "ServiceFabric")
    assert (stale.step, stale.remediation) == ("deployment-config-updated", "deployment-config-update")
