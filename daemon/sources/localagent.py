"""The `localagent` source: localagent-config.json (localagent-config-update edits it too)."""

from __future__ import annotations

from collectors.agentconfig import LocalAgentConfigCollector
from collectors.base import Collector
from daemon.sources.base import FileSource, Paths


def collector(section: FileSource) -> Collector | None:
    """The collector, when the file is configured."""
    if not section.enabled or section.path is None:
        return None
    return LocalAgentConfigCollector(section.path, **section.timing())


def paths(section: FileSource) -> Paths:
    """The file this source reads."""
    return [("sources.localagent.path", section.path)]
