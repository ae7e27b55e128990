"""The `agentshare` source: the agent file share's config.json, located through OrchestratorData."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from collectors.agentshare import AgentShare, AgentShareCollector, Locator
from collectors.base import Collector, Deadline
from collectors.sql import ORCHESTRATOR
from collectors.sql.orchestrator import config_json_locations
from daemon.sources.base import Paths, SourceSettings
from daemon.sources.sql import SqlSource, database_specs
from remediations.deploymentconfig import AGENT_SHARE_OPTION


class AgentShareSource(SourceSettings):
    """The agent file share: config.json of the deployment (and, by default, Credentials.json)."""

    #: the share as this machine reaches it: a UNC path on Windows, a mount point on Linux
    path: Path | None = None
    #: the share as OrchestratorData writes it (\\server\share\agent); default: `path` when it is UNC
    unc: str = ""
    #: config.json location to read instead of asking OrchestratorData
    config_json: str = ""


def agent_share(section: AgentShareSource) -> AgentShare | None:
    """The configured agent share, or None."""
    return AgentShare(section.path, section.unc) if section.path is not None else None


def locator(sql: SqlSource) -> Locator | None:
    """Looks config.json up in OrchestratorData, when it is configured."""
    spec = database_specs(sql).get(ORCHESTRATOR)
    if spec is None:
        return None
    environment_id = sql.environment_id

    def locate(deadline: Deadline) -> tuple[str, ...]:
        return config_json_locations(spec, environment_id, deadline)

    return locate


def collector(section: AgentShareSource, sql: SqlSource) -> Collector | None:
    """The collector, when the share is configured (OrchestratorData from the `sql` source locates config.json)."""
    share = agent_share(section)
    if not section.enabled or share is None:
        return None
    return AgentShareCollector(
        share,
        locate=locator(sql),
        config_json=section.config_json,
        environment_id=sql.environment_id,
        timeout=section.timeout_seconds,
        interval=section.interval_seconds,
    )


def paths(section: AgentShareSource) -> Paths:
    """The share this source reads."""
    return [("sources.agentshare.path", section.path)]


def remediation_options(section: AgentShareSource) -> dict[str, Any]:
    """The share deployment-config-update edits."""
    return {AGENT_SHARE_OPTION: agent_share(section)}
