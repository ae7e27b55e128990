"""Microsoft's Service Fabric Python SDK (azure-servicefabric) against the simulated gateway.

The SDK's client makes the calls with its own URLs, api-versions and request bodies, and its
msrest Deserializer turns every answer into the SDK's models: an answer shaped differently from
the REST specification (a missing or mistyped field, a wrong case) shows here, in code nobody on
this project wrote. Every member of every answer must be one the model declares.
"""

from __future__ import annotations

import json
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
import requests
from azure.servicefabric import ServiceFabricClientAPIs
from azure.servicefabric import models as sdk
from msrest.authentication import Authentication
from requests.adapters import HTTPAdapter

from collectors.clusterconfig import parse_cluster_config
from simulator.pki import Issued
from tests.sfkit import HOST, SfLab, sf_lab

MODELS = {name: getattr(sdk, name) for name in dir(sdk) if isinstance(getattr(sdk, name), type)}


class _ClusterHost(HTTPAdapter):
    """Connect to the loopback address but verify the server certificate for the cluster's DNS name."""

    def init_poolmanager(self, *args: Any, **kwargs: Any) -> None:
        kwargs["server_hostname"] = HOST
        kwargs["assert_hostname"] = HOST
        super().init_poolmanager(*args, **kwargs)


class _ClientCertificate(Authentication):
    """msrest credentials presenting a client certificate, the way sfctl does (a cert/key pair on the session)."""

    def __init__(self, cert: Path, key: Path, ca: Path) -> None:
        self.cert, self.key, self.ca = cert, key, ca

    def signed_session(self, session: requests.Session | None = None) -> requests.Session:
        session = super().signed_session(session)
        session.cert = (str(self.cert), str(self.key))
        session.verify = str(self.ca)
        session.mount("https://", _ClusterHost())
        return session


def _client(sf: SfLab, issued: Issued, tmp_path: Path) -> ServiceFabricClientAPIs:
    cert, key = tmp_path / f"{issued.thumbprint}.pem", tmp_path / f"{issued.thumbprint}.key"
    cert.write_bytes(issued.pem)
    key.write_bytes(issued.key_pem)
    client = ServiceFabricClientAPIs(_ClientCertificate(cert, key, sf.lab.ca_bundle), base_url=sf.gateway.url)
    # msrest passes its connection settings with every request, over the session's: set them the same.
    client.config.connection.verify = str(sf.lab.ca_bundle)
    client.config.connection.cert = (str(cert), str(key))
    return client


def _model_type(spec: str) -> tuple[str, Any]:
    if spec.startswith("[") and spec.endswith("]"):
        return "list", spec[1:-1]
    if spec.startswith("{") and spec.endswith("}"):
        return "dict", spec[1:-1]
    return "one", spec


def undeclared(model: str, value: Any, where: str = "") -> list[str]:
    """Members of `value` that the SDK model `model` (and its nested models) does not declare."""
    cls = MODELS.get(model)
    if cls is None or not isinstance(value, dict):
        return []
    subtypes = getattr(cls, "_subtype_map", {})
    for discriminator, mapping in subtypes.items():
        key = cls._attribute_map[discriminator]["key"]
        concrete = mapping.get(value.get(key, ""))
        if concrete in MODELS and MODELS[concrete] is not cls:
            return undeclared(concrete, value, where)
    declared = {spec["key"].split(".")[0]: spec["type"] for spec in cls._attribute_map.values()}
    found = [f"{where}{key}" for key in value if key not in declared]
    for key, spec in declared.items():
        if key not in value:
            continue
        kind, inner = _model_type(spec)
        items = value[key] if kind == "list" and isinstance(value[key], list) else [value[key]]
        if kind == "dict" and isinstance(value[key], dict):
            items = list(value[key].values())
        for index, item in enumerate(items):
            found += undeclared(inner, item, f"{where}{key}[{index}]." if kind == "list" else f"{where}{key}.")
    return found


def _raw(client: ServiceFabricClientAPIs, call: str, *args: Any, **kwargs: Any) -> tuple[Any, Any]:
    response = getattr(client, call)(*args, raw=True, **kwargs)
    return response.output, json.loads(response.response.text)


def test_every_read_answer_deserialises_in_the_sdk_models(sf: SfLab, tmp_path: Path) -> None:
    client = _client(sf, sf.lab.service_certs["SFMonitorClient"], tmp_path)
    # The member check itself: a member the model does not declare, nested or not, is reported.
    assert undeclared("ClusterVersion", {"Version": "7.2", "Percent": 3}) == ["Percent"]
    assert undeclared("ClusterHealth", {"NodeHealthStates": [{"Name": "n", "nodeId": 1}]}) == [
        "NodeHealthStates[0].nodeId"
    ]

    configuration, body = _raw(client, "get_cluster_configuration", configuration_api_version="10-2017")
    assert isinstance(configuration, sdk.ClusterConfiguration)
    assert undeclared("ClusterConfiguration", body) == []
    document = json.loads(configuration.cluster_configuration)
    # What a real cluster returns: the Upgrade Orchestration Service's model names, PascalCase.
    assert list(document)[:4] == ["Name", "ClusterConfigurationVersion", "ApiVersion", "Nodes"]
    assert set(document["Nodes"][0]) == {"NodeName", "IPAddress", "NodeTypeRef", "FaultDomain", "UpgradeDomain"}
    parsed = parse_cluster_config(document, "GetClusterConfiguration")
    assert parsed.version == "2.0.0" and parsed.certificates and parsed.clients

    status, body = _raw(client, "get_cluster_configuration_upgrade_status")
    assert isinstance(status, sdk.ClusterConfigurationUpgradeStatusInfo)
    assert undeclared("ClusterConfigurationUpgradeStatusInfo", body) == []
    assert (status.upgrade_state, status.config_version, status.progress_status) == (
        "RollingForwardCompleted",
        "2.0.0",
        1,
    )

    version, body = _raw(client, "get_cluster_version")
    assert isinstance(version, sdk.ClusterVersion) and version.version == sf.cluster.code_version
    assert undeclared("ClusterVersion", body) == []

    health, body = _raw(client, "get_cluster_health")
    assert isinstance(health, sdk.ClusterHealth) and health.aggregated_health_state in ("Ok", "Warning", "Error")
    assert undeclared("ClusterHealth", body) == []
    node = health.node_health_states[0].name
    node_health, body = _raw(client, "get_node_health", node)
    assert isinstance(node_health, sdk.NodeHealth) and node_health.name == node
    assert undeclared("NodeHealth", body) == []
    assert all(isinstance(e, sdk.HealthEvent) for e in node_health.health_events)

    progress, body = _raw(client, "get_cluster_upgrade_progress")
    assert isinstance(progress, sdk.ClusterUpgradeProgressObject)
    assert undeclared("ClusterUpgradeProgressObject", body) == []
    assert progress.upgrade_description.upgrade_replica_set_check_timeout_in_seconds == sf.cluster.replica_timeout

    names: list[str] = []
    token = None
    for _page in range(10):
        page, body = _raw(client, "get_application_info_list", continuation_token=token)
        assert isinstance(page, sdk.PagedApplicationInfoList)
        assert undeclared("PagedApplicationInfoList", body) == []
        names += [app.name for app in page.items]
        assert all(isinstance(p, sdk.ApplicationParameter) for app in page.items for p in app.parameters)
        token = page.continuation_token or None
        if token is None:
            break
    assert names == ["fabric:/AXSF", "fabric:/FinancialReporting", "fabric:/LocalAgent"]


def test_the_sdk_admin_calls_drive_a_configuration_upgrade(sf: SfLab, tmp_path: Path) -> None:
    admin = _client(sf, sf.lab.cert("ServiceFabricClient", "old").issued, tmp_path)
    staged = sf.lab.cluster_config.read_text(encoding="utf-8")
    description = sdk.ClusterConfigurationUpgradeDescription(
        cluster_config=staged,
        health_check_retry_timeout=timedelta(minutes=45),
        upgrade_domain_timeout_in_seconds=timedelta(hours=2),
        max_percent_unhealthy_nodes=0,
    )
    admin.start_cluster_configuration_upgrade(description)
    status = admin.get_cluster_configuration_upgrade_status()
    # The status names the configuration that runs now, not the one being rolled out.
    assert (status.upgrade_state, status.config_version) == ("RollingForwardInProgress", "2.0.0")
    update = sdk.UpdateClusterUpgradeDescription(
        upgrade_kind="Rolling",
        update_description=sdk.RollingUpgradeUpdateDescription(
            rolling_upgrade_mode="UnmonitoredAuto", replica_set_check_timeout_in_milliseconds=30000
        ),
    )
    admin.update_cluster_upgrade(update)
    assert admin.get_cluster_upgrade_progress().upgrade_description.upgrade_replica_set_check_timeout_in_seconds == 30
    sf.finish_upgrade()
    status = admin.get_cluster_configuration_upgrade_status()
    assert (status.upgrade_state, status.config_version, status.progress_status) == (
        "RollingForwardCompleted",
        "2.0.1",
        2,
    )


def test_a_refusal_is_a_fabric_error_the_sdk_reads(sf: SfLab, tmp_path: Path) -> None:
    reader = _client(sf, sf.lab.service_certs["SFMonitorClient"], tmp_path)
    description = sdk.ClusterConfigurationUpgradeDescription(cluster_config="{}")
    with pytest.raises(sdk.FabricErrorException) as caught:
        reader.start_cluster_configuration_upgrade(description)
    assert caught.value.response.status_code == 403
    assert caught.value.error.error.code == "E_ACCESSDENIED"


def test_an_old_cluster_version_reads_in_the_sdk(lab_copy: Any, tmp_path: Path) -> None:
    """A pre-7.2 cluster's version answer is read by the SDK too (the version gate's input)."""
    with sf_lab(lab_copy, code_version="7.1.510.9590") as sf:
        client = _client(sf, sf.lab.service_certs["SFMonitorClient"], tmp_path)
        assert client.get_cluster_version().version == "7.1.510.9590"
