"""The `clusterconfig` source: a ClusterConfig.json file (the SF remediations edit it too)."""

from __future__ import annotations

from collectors.base import Collector
from collectors.clusterconfig import ClusterConfigFileCollector
from daemon.sources.base import FileSource, Paths


def collector(section: FileSource) -> Collector | None:
    """The collector, when the file is configured."""
    if not section.enabled or section.path is None:
        return None
    return ClusterConfigFileCollector(section.path, **section.timing())


def paths(section: FileSource) -> Paths:
    """The file this source reads."""
    return [("sources.clusterconfig.path", section.path)]
