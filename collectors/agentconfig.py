"""LocalAgent configuration files: localagent-config.json and the agent share's config.json."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from collectors.base import Deadline, FileCollector
from collectors.certificate import normalize_thumbprint
from collectors.clusterconfig import SF_CLIENT_ROLE, SF_ROLE, ClusterConfig
from collectors.configtemplate import ConfigTemplate
from collectors.errors import CollectorError, Reason, ThumbprintError
from collectors.files import parse_json, read_bytes
from collectors.model import CertReference, Generation, MetricSpec, Observation, Snapshot

SERVER_SETTING = "serviceFabric.certificateSettings.serverCertThumbprint"
CLIENT_SETTING = "serviceFabric.certificateSettings.clientCertThumbprint"
SETTING_ROLES = ((SERVER_SETTING, SF_ROLE), (CLIENT_SETTING, SF_CLIENT_ROLE))


@dataclass(frozen=True, slots=True)
class AgentConfig:
    """The serviceFabric block both agent configuration files begin with."""

    path: str
    connection_endpoint: str
    cluster_id: str
    server_thumbprint: str
    client_thumbprint: str

    def thumbprint(self, setting: str) -> str:
        """The value of one of the two thumbprint settings."""
        return self.server_thumbprint if setting == SERVER_SETTING else self.client_thumbprint


def parse_agent_config(document: Any, name: str) -> AgentConfig:
    """Interpret an agent configuration; raises CollectorError naming the setting."""
    if not isinstance(document, dict):
        raise CollectorError(name, Reason.PARSE_ERROR, "document: expected a JSON object")
    fabric = document.get("serviceFabric")
    if not isinstance(fabric, dict):
        raise CollectorError(name, Reason.PARSE_ERROR, "serviceFabric: missing or not an object")
    settings = fabric.get("certificateSettings")
    if not isinstance(settings, dict):
        raise CollectorError(name, Reason.PARSE_ERROR, "serviceFabric.certificateSettings: missing or not an object")
    values = {}
    for setting in (SERVER_SETTING, CLIENT_SETTING):
        raw = settings.get(setting.rsplit(".", 1)[1])
        if raw in (None, ""):
            values[setting] = ""
            continue
        if not isinstance(raw, str):
            raise CollectorError(name, Reason.PARSE_ERROR, f"{setting}: expected a string")
        try:
            values[setting] = normalize_thumbprint(raw)
        except ThumbprintError as err:
            raise CollectorError(name, Reason.PARSE_ERROR, f"{setting}: {err}") from err
    return AgentConfig(
        path=name,
        connection_endpoint=str(fabric.get("connectionEndpoint", "")),
        cluster_id=str(fabric.get("clusterId", "")),
        server_thumbprint=values[SERVER_SETTING],
        client_thumbprint=values[CLIENT_SETTING],
    )


def load_agent_config(path: str | Path) -> AgentConfig:
    """Read and interpret an agent configuration file."""
    return parse_agent_config(parse_json(read_bytes(path), str(path)), str(path))


def agent_references(config: AgentConfig, source: str, label: str) -> tuple[CertReference, ...]:
    """The two thumbprints the agent uses to reach the cluster."""
    refs = []
    for setting, role in ((SERVER_SETTING, SF_ROLE), (CLIENT_SETTING, SF_CLIENT_ROLE)):
        value = config.thumbprint(setting)
        if value:
            refs.append(CertReference(role, value, Generation.NEW, f"{label}:{setting}", source))
    return tuple(refs)


@dataclass(frozen=True, slots=True)
class AgentTarget:
    """The thumbprints the agent configurations should carry, where they come from, or why unknown."""

    server: str = ""
    client: str = ""
    basis: str = ""
    problem: str = ""

    @property
    def known(self) -> bool:
        """True when both thumbprints are determined."""
        return not self.problem and bool(self.server and self.client)

    def thumbprint(self, setting: str) -> str:
        """The wanted value of one of the two thumbprint settings."""
        return self.server if setting == SERVER_SETTING else self.client


def agent_target(snapshot: Snapshot) -> AgentTarget:
    """The cluster's current thumbprints: from the cluster configuration, else the new ConfigTemplate.

    The evaluator's `agent-config-thumbprint-stale` finding and the agent-config remediations
    both decide with this function.
    """
    templates = [t for _, t in snapshot.facts("configtemplate", ConfigTemplate) if t.generation is Generation.NEW]
    template_server = next((tp for t in templates for tp in t.thumbprints(SF_ROLE)), "")
    template_client = next((tp for t in templates for tp in t.thumbprints(SF_CLIENT_ROLE)), "")
    for target, cluster in snapshot.facts("clusterconfig", ClusterConfig):
        cert = cluster.certificate("server") or cluster.certificate("cluster")
        if cert is None or not cert.thumbprint:
            continue  # declared by common name: the template is the only source of thumbprints
        basis = f"cluster configuration {target}"
        admins = [c.thumbprint for c in cluster.clients if c.is_admin and c.thumbprint]
        if template_client in admins or len(admins) == 1:
            client = template_client if template_client in admins else admins[0]
            return AgentTarget(cert.thumbprint, client, basis)
        if not admins:
            return AgentTarget(cert.thumbprint, "", basis, f"{basis} lists no admin client certificate")
        return AgentTarget(
            cert.thumbprint,
            "",
            basis,
            f"{basis} lists {len(admins)} admin client certificates and the new ConfigTemplate.xml names none of them",
        )
    if template_server and template_client:
        return AgentTarget(template_server, template_client, "ConfigTemplate.xml (Infrastructure)")
    return AgentTarget(
        problem="neither a cluster configuration nor the new ConfigTemplate.xml names the Service Fabric "
        "server and client thumbprints"
    )


def agent_drift(config: AgentConfig, target: AgentTarget) -> list[tuple[str, str, str]]:
    """(setting, current, wanted) for each thumbprint setting that differs from the target."""
    if not target.known:
        return []
    return [
        (setting, config.thumbprint(setting), target.thumbprint(setting))
        for setting, _role in SETTING_ROLES
        if config.thumbprint(setting) != target.thumbprint(setting)
    ]


def _endpoint_samples(facts: Any, target: str) -> list[tuple[tuple[str, ...], float]]:
    return [((target, setting, facts.thumbprint(setting)), 1.0) for setting in (SERVER_SETTING, CLIENT_SETTING)]


class LocalAgentConfigCollector(FileCollector):
    """localagent-config.json on the management host."""

    name = "localagent"
    metrics = (
        MetricSpec(
            "certmon_agent_config_thumbprint_info",
            "Thumbprints an agent configuration file points the LocalAgent at.",
            ("file", "setting", "thumbprint"),
            _endpoint_samples,
        ),
    )

    def collect(self, target: str, deadline: Deadline) -> Observation:
        """Read the file."""
        config = load_agent_config(self.path)
        return Observation(references=agent_references(config, self.name, self.path.name), facts=config)
