"""The `configtemplate` source: the Infrastructure / InfrastructureOld pair of ConfigTemplate.xml."""

from __future__ import annotations

from pathlib import Path

from collectors.base import Collector
from collectors.configtemplate import ConfigTemplateCollector
from daemon.sources.base import Paths, SourceSettings


class ConfigTemplateSource(SourceSettings):
    """The Infrastructure / InfrastructureOld pair (folders or ConfigTemplate.xml paths)."""

    infrastructure: Path | None = None
    infrastructure_old: Path | None = None


def collector(section: ConfigTemplateSource) -> Collector | None:
    """The collector, when the Infrastructure folder is configured."""
    if not section.enabled or section.infrastructure is None:
        return None
    return ConfigTemplateCollector(section.infrastructure, section.infrastructure_old, **section.timing())


def paths(section: ConfigTemplateSource) -> Paths:
    """Files and folders this source reads."""
    return [
        ("sources.configtemplate.infrastructure", section.infrastructure),
        ("sources.configtemplate.infrastructure_old", section.infrastructure_old),
    ]
