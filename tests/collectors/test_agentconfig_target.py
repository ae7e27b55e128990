"""Which thumbprints the agent configurations should carry: cluster first, ConfigTemplate second."""

from __future__ import annotations

import copy
from datetime import UTC, datetime
from typing import Any

import pytest

from collectors.agentconfig import CLIENT_SETTING, SERVER_SETTING, AgentConfig, agent_drift, agent_target
from collectors.clusterconfig import parse_cluster_config
from collectors.configtemplate import load_config_template
from collectors.model import Generation, Health, Observation, Snapshot, SourceResult
from simulator.lab import Lab
from simulator.labconfigs import cluster_config_document

AT = datetime(2026, 11, 27, 12, 0, tzinfo=UTC)


def _result(source: str, target: str, facts: Any) -> SourceResult:
    health = Health(True, None, "", 0.1, AT, AT)
    return SourceResult(source, target, health, Observation(facts=facts))


def _snapshot(lab: Lab, cluster: dict[str, Any] | None, *, template: bool = True) -> Snapshot:
    results = {}
    if cluster is not None:
        results[("clusterconfig", "ClusterConfig.json")] = _result(
            "clusterconfig", "ClusterConfig.json", parse_cluster_config(cluster, "ClusterConfig.json")
        )
    if template:
        for folder, generation in ((lab.infrastructure, Generation.NEW), (lab.infrastructure_old, Generation.OLD)):
            results[("configtemplate", folder.name)] = _result(
                "configtemplate", folder.name, load_config_template(folder, generation)
            )
    return Snapshot("demo", AT, results)


def _new(lab: Lab) -> tuple[str, str]:
    return lab.cert("ServiceFabric", "new").thumbprint, lab.cert("ServiceFabricClient", "new").thumbprint


def test_staged_cluster_gives_the_new_pair(lab_template: Lab) -> None:
    target = agent_target(_snapshot(lab_template, cluster_config_document(lab_template)))
    assert target.known
    assert (target.server, target.client) == _new(lab_template)
    assert target.basis == "cluster configuration ClusterConfig.json"


def test_template_picks_the_client_among_several_admins(lab_template: Lab) -> None:
    document = cluster_config_document(lab_template)
    clients = document["properties"]["security"]["CertificateInformation"]["ClientCertificateThumbprints"]  # type: ignore[index]
    for client in clients:
        client["IsAdmin"] = True
    assert agent_target(_snapshot(lab_template, document)).client == _new(lab_template)[1]
    # Without the template, two admins are ambiguous: say so rather than guess.
    ambiguous = agent_target(_snapshot(lab_template, document, template=False))
    assert not ambiguous.known
    assert "lists 2 admin client certificates" in ambiguous.problem


def test_single_admin_client_needs_no_template(lab_template: Lab) -> None:
    target = agent_target(_snapshot(lab_template, cluster_config_document(lab_template), template=False))
    assert (target.server, target.client) == _new(lab_template)


def test_no_admin_client_is_a_problem(lab_template: Lab) -> None:
    document = copy.deepcopy(cluster_config_document(lab_template))
    for client in document["properties"]["security"]["CertificateInformation"]["ClientCertificateThumbprints"]:  # type: ignore[index]
        client["IsAdmin"] = False
    target = agent_target(_snapshot(lab_template, document, template=False))
    assert target.problem == "cluster configuration ClusterConfig.json lists no admin client certificate"


def test_common_name_cluster_falls_back_to_the_template(lab_template: Lab) -> None:
    document = cluster_config_document(lab_template)
    info = document["properties"]["security"]["CertificateInformation"]  # type: ignore[index]
    for key in ("ClusterCertificate", "ServerCertificate", "ReverseProxyCertificate"):
        del info[key]
    info["ServerCertificateCommonNames"] = {"CommonNames": [{"CertificateCommonName": "*.contoso.lab"}]}
    target = agent_target(_snapshot(lab_template, document))
    assert target.basis == "ConfigTemplate.xml (Infrastructure)"
    assert (target.server, target.client) == _new(lab_template)


def test_nothing_known_without_cluster_or_template(lab_template: Lab) -> None:
    target = agent_target(_snapshot(lab_template, None, template=False))
    assert not target.known
    assert "neither a cluster configuration nor the new ConfigTemplate.xml" in target.problem


@pytest.mark.parametrize(
    ("server", "client", "expected"),
    [
        ("S", "C", []),
        ("OLD", "C", [(SERVER_SETTING, "OLD", "S")]),
        ("", "", [(SERVER_SETTING, "", "S"), (CLIENT_SETTING, "", "C")]),
    ],
)
def test_drift_lists_each_differing_setting(server: str, client: str, expected: list[tuple[str, str, str]]) -> None:
    from collectors.agentconfig import AgentTarget

    config = AgentConfig("localagent-config.json", "", "", server, client)
    assert agent_drift(config, AgentTarget("S", "C", "test")) == expected
    assert agent_drift(config, AgentTarget(problem="unknown")) == []
