"""The simulated cluster: the upgrade walk on a manual clock, and the upgrades Service Fabric refuses."""

from __future__ import annotations

import copy
import json
from typing import Any

import pytest

from collectors.clusterconfig import member_key
from simulator.lab import Lab
from simulator.servicefabric import lab_cluster, running_config_text
from simulator.sfcluster import RESET_TIMEOUT, FabricFailure, ManualClock, SimulatedCluster
from simulator.sfhealth import cluster_health, node_health

STEP = 10.0


@pytest.fixture
def cluster(lab_copy: Lab) -> SimulatedCluster:
    return lab_cluster(lab_copy, clock=ManualClock(), step_seconds=STEP)


def _document(cluster: SimulatedCluster) -> dict[str, Any]:
    return dict(json.loads(cluster.running_text()))


def _staged(lab: Lab) -> str:
    return lab.cluster_config.read_text(encoding="utf-8")


def _advance(cluster: SimulatedCluster, seconds: float) -> None:
    assert isinstance(cluster.clock, ManualClock)
    cluster.clock.advance(seconds)


def test_an_upgrade_walks_every_domain_then_applies_the_configuration(cluster: SimulatedCluster, lab_copy: Lab) -> None:
    assert cluster.status() == {
        "UpgradeState": "RollingForwardCompleted",
        "ProgressStatus": 1,
        "ConfigVersion": "2.0.0",
        "Details": "",
    }
    cluster.start_upgrade({"ClusterConfig": _staged(lab_copy)})
    seen = []
    for _ in range(4):
        progress = cluster.progress()
        status = cluster.status()
        seen.append((progress["UpgradeState"], [d["State"] for d in progress["UpgradeDomains"]]))
        running = "2.0.1" if len(seen) == 4 else "2.0.0"
        assert _document(cluster)["ClusterConfigurationVersion"] == running
        # ConfigVersion is the running version (never the target); ProgressStatus the manifest version.
        assert (status["UpgradeState"], status["ConfigVersion"]) == (progress["UpgradeState"], running)
        assert status["ProgressStatus"] == (2 if len(seen) == 4 else 1)
        _advance(cluster, STEP)
    assert seen == [
        ("RollingForwardInProgress", ["InProgress", "Pending", "Pending"]),
        ("RollingForwardInProgress", ["Completed", "InProgress", "Pending"]),
        ("RollingForwardInProgress", ["Completed", "Completed", "InProgress"]),
        ("RollingForwardCompleted", ["Completed", "Completed", "Completed"]),
    ]
    assert cluster.status()["ConfigVersion"] == "2.0.1"
    assert cluster.server_thumbprint() == lab_copy.cert("ServiceFabric", "new").thumbprint


def _refused(cluster: SimulatedCluster, body: Any) -> FabricFailure:
    with pytest.raises(FabricFailure) as caught:
        cluster.start_upgrade(body)
    return caught.value


def _with(document: dict[str, Any], **changes: Any) -> str:
    changed = copy.deepcopy(document)
    properties = changed[member_key(changed, "properties")]
    security = properties[member_key(properties, "security")]
    info = security["CertificateInformation"]
    for key, value in changes.items():
        if key == "version":
            changed[member_key(changed, "clusterConfigurationVersion")] = value
        elif value is None:
            info.pop(key)
        else:
            info[key] = value
    return json.dumps(changed)


def test_refusals_like_service_fabric(cluster: SimulatedCluster, lab_copy: Lab) -> None:
    running = json.loads(running_config_text(lab_copy))
    old = lab_copy.cert("ServiceFabric", "old").thumbprint
    new = lab_copy.cert("ServiceFabric", "new").thumbprint
    other = lab_copy.cert("SSRSHTTPS", "new").thumbprint
    cases = [
        ({"ClusterConfig": 3}, "E_INVALIDARG", "ClusterConfig: the cluster configuration JSON string is required"),
        ({"ClusterConfig": "{not json"}, "FABRIC_E_INVALID_CONFIGURATION", "ClusterConfig is not valid JSON"),
        (
            {"ClusterConfig": json.dumps({**running, "nodes": "all"})},
            "FABRIC_E_INVALID_CONFIGURATION",
            "nodes: expected an array",
        ),
        (
            {"ClusterConfig": _with(running, version="2.0.0")},
            "FABRIC_E_FABRIC_UPGRADE_VALIDATION_ERROR",
            "the new clusterConfigurationVersion 2.0.0 must be greater than 2.0.0",
        ),
        (
            {"ClusterConfig": _with(running, version="2.0.1", ClusterCertificate={"Thumbprint": other})},
            "FABRIC_E_FABRIC_UPGRADE_VALIDATION_ERROR",
            f"ClusterCertificate: the new certificates must keep one of the current ones ({old})",
        ),
        (
            {"ClusterConfig": _with(running, version="2.0.1", ReverseProxyCertificate=None)},
            "FABRIC_E_FABRIC_UPGRADE_VALIDATION_ERROR",
            "ReverseProxyCertificate cannot be removed",
        ),
    ]
    for body, code, text in cases:
        failure = _refused(cluster, body)
        assert (failure.status, failure.code) == (400, code), failure.message
        assert text in failure.message
    # Two certificates to two different certificates: stage, upgrade, then try the next rotation at once.
    cluster.start_upgrade({"ClusterConfig": _staged(lab_copy)})
    failure = _refused(cluster, {"ClusterConfig": _with(running, version="2.0.2")})
    assert failure.code == "FABRIC_E_FABRIC_UPGRADE_IN_PROGRESS"
    _advance(cluster, 10 * STEP)
    staged = _document(cluster)
    pair = {"Thumbprint": other, "ThumbprintSecondary": new}
    failure = _refused(cluster, {"ClusterConfig": _with(staged, version="2.0.2", ClusterCertificate=pair)})
    assert failure.message == (
        "ClusterCertificate: Upgrading from 2 different certificates to 2 different certificates is not allowed"
    )


def test_a_reset_replica_timeout_holds_the_single_node_domain_until_updated(lab_copy: Lab) -> None:
    cluster = lab_cluster(lab_copy, clock=ManualClock(), step_seconds=STEP, reset_replica_timeout=True)
    cluster.start_upgrade({"ClusterConfig": _staged(lab_copy)})
    _advance(cluster, 100 * STEP)
    progress = cluster.progress()
    # ud0 holds BI1 and MR1, the only nodes of their types.
    assert (progress["UpgradeState"], progress["CurrentUpgradeDomainProgress"]["DomainName"]) == (
        "RollingForwardInProgress",
        "ud0",
    )
    assert progress["UpgradeDescription"]["UpgradeReplicaSetCheckTimeoutInSeconds"] == RESET_TIMEOUT
    assert progress["UpgradeDomainDurationInMilliseconds"] == "PT0H16M40.000S"
    with pytest.raises(FabricFailure, match="RollingUpgradeMode is required"):
        cluster.update_upgrade({"UpdateDescription": {"ReplicaSetCheckTimeoutInMilliseconds": 30000}})
    cluster.update_upgrade(
        {
            "UpgradeKind": "Rolling",
            "UpdateDescription": {
                "RollingUpgradeMode": "UnmonitoredAuto",
                "ReplicaSetCheckTimeoutInMilliseconds": 30000,
            },
        }
    )
    assert cluster.progress()["UpgradeDescription"]["UpgradeReplicaSetCheckTimeoutInSeconds"] == 30
    _advance(cluster, 3 * STEP)
    assert cluster.status()["UpgradeState"] == "RollingForwardCompleted"
    with pytest.raises(FabricFailure) as caught:
        cluster.update_upgrade({"UpdateDescription": {"RollingUpgradeMode": "UnmonitoredAuto"}})
    assert caught.value.code == "FABRIC_E_FABRIC_NOT_UPGRADING"


def test_a_stuck_upgrade_never_leaves_its_domain(lab_copy: Lab) -> None:
    cluster = lab_cluster(lab_copy, clock=ManualClock(), step_seconds=STEP, stuck=True)
    cluster.start_upgrade({"ClusterConfig": _staged(lab_copy)})
    _advance(cluster, 7200)
    progress = cluster.progress()
    assert progress["UpgradeState"] == "RollingForwardInProgress"
    assert progress["UpgradeDomainDurationInMilliseconds"] == "PT2H0M0.000S"
    assert _document(cluster)["ClusterConfigurationVersion"] == "2.0.0"


def test_clients_are_authorized_by_the_running_configuration(cluster: SimulatedCluster, lab_copy: Lab) -> None:
    old, new = lab_copy.cert("ServiceFabricClient", "old").issued, lab_copy.cert("ServiceFabricClient", "new").issued
    monitor = lab_copy.service_certs["SFMonitorClient"]
    rogue_named = lab_copy.service_certs["tls-untrusted"]
    assert [cluster.client_role(c.cert) for c in (old, new, monitor, rogue_named)] == ["admin", "", "read", ""]
    assert cluster.client_role(None) == ""
    cluster.start_upgrade({"ClusterConfig": _staged(lab_copy)})
    _advance(cluster, 10 * STEP)
    assert [cluster.client_role(c.cert) for c in (old, new, monitor)] == ["read", "admin", "read"]


def test_node_health_reports_the_certificate_in_use(cluster: SimulatedCluster, lab_copy: Lab) -> None:
    health = node_health(cluster, "BI1")
    assert health is not None and health["AggregatedHealthState"] == "Warning"
    old = lab_copy.cert("ServiceFabric", "old").thumbprint.lower()
    assert all(f"thumbprint = {old}, expiration = " in e["Description"] for e in health["HealthEvents"])
    assert node_health(cluster, "NOPE") is None
    cluster.start_upgrade({"ClusterConfig": _staged(lab_copy)})
    _advance(cluster, 10 * STEP)
    # Staged: old and new both declared; a node loads the one that expires last.
    assert cluster_health(cluster)["AggregatedHealthState"] == "Ok"
