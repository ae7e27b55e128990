"""Where sources are registered: the `sources:` section of the configuration, and one factory line per source.

Adding a source: its module in this package (settings section, `collector`, `paths`, remediation options),
one field in `Sources` and one line in `FACTORIES`. `daemon.settings` embeds `Sources`; this module never
imports `daemon.settings` (callers pass anything with a `sources` attribute), so the two stay acyclic.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from datetime import datetime
from pathlib import Path
from typing import Any, Protocol

from pydantic import Field

from collectors.base import Collector
from collectors.sql.progress import ProgressHistory
from daemon.sources import (
    adfs,
    agentshare,
    certfolder,
    clusterconfig,
    configtemplate,
    credentials,
    localagent,
    servicefabric,
    sql,
    tls,
    winrm,
)
from daemon.sources.adfs import AdfsSource
from daemon.sources.agentshare import AgentShareSource
from daemon.sources.base import FileSource, Paths, Strict
from daemon.sources.certfolder import CertFolderSource
from daemon.sources.configtemplate import ConfigTemplateSource
from daemon.sources.credentials import CredentialsSource
from daemon.sources.servicefabric import ServiceFabricSource
from daemon.sources.sql import SqlSource
from daemon.sources.tls import TlsSource
from daemon.sources.winrm import WinRMSource


class Sources(Strict):
    """Every source certmon can read; a source without its location is off."""

    configtemplate: ConfigTemplateSource = Field(default_factory=ConfigTemplateSource)
    clusterconfig: FileSource = Field(default_factory=FileSource)
    localagent: FileSource = Field(default_factory=FileSource)
    certfolder: CertFolderSource = Field(default_factory=CertFolderSource)
    adfs: AdfsSource = Field(default_factory=AdfsSource)
    tls: TlsSource = Field(default_factory=TlsSource)
    winrm: WinRMSource = Field(default_factory=WinRMSource)
    servicefabric: ServiceFabricSource = Field(default_factory=ServiceFabricSource)
    sql: SqlSource = Field(default_factory=SqlSource)
    agentshare: AgentShareSource = Field(default_factory=AgentShareSource)
    credentials: CredentialsSource = Field(default_factory=CredentialsSource)


class Configured(Protocol):
    """What the functions below read of the settings: the `sources` section."""

    @property
    def sources(self) -> Sources: ...


Factory = Callable[[Sources], Collector | None]

FACTORIES: dict[str, Factory] = {
    "configtemplate": lambda s: configtemplate.collector(s.configtemplate),
    "clusterconfig": lambda s: clusterconfig.collector(s.clusterconfig),
    "localagent": lambda s: localagent.collector(s.localagent),
    "certfolder": lambda s: certfolder.collector(s.certfolder),
    "adfs": lambda s: adfs.collector(s.adfs),
    "tls": lambda s: tls.collector(s.tls),
    "winrm": lambda s: winrm.collector(s.winrm),
    "servicefabric": lambda s: servicefabric.collector(s.servicefabric),
    "sql": lambda s: sql.collector(s.sql),
    "agentshare": lambda s: agentshare.collector(s.agentshare, s.sql),
    "credentials": lambda s: credentials.collector(s.credentials, s.agentshare),
}


def build_collectors(settings: Configured) -> list[Collector]:
    """A collector for every configured and enabled source."""
    collectors = []
    for factory in FACTORIES.values():
        collector = factory(settings.sources)
        if collector is not None:
            collectors.append(collector)
    return collectors


def jitter(settings: Configured, name: str) -> float:
    """Configured jitter of a source."""
    section = getattr(settings.sources, name, None)
    return float(getattr(section, "jitter_seconds", 0.0))


def configured_paths(settings: Configured) -> Paths:
    """Files and folders the sources read, for check-config."""
    s = settings.sources
    return [
        *configtemplate.paths(s.configtemplate),
        *clusterconfig.paths(s.clusterconfig),
        *localagent.paths(s.localagent),
        *certfolder.paths(s.certfolder),
        *winrm.paths(s.winrm),
        *tls.paths(s.tls),
        *adfs.paths(s.adfs),
        *servicefabric.paths(s.servicefabric),
        *sql.paths(s.sql),
        *agentshare.paths(s.agentshare),
        *credentials.paths(s.credentials, s.agentshare),
    ]


def keep_history(collectors: Iterable[Collector], history: ProgressHistory, clock: Callable[[], datetime]) -> None:
    """Sources that keep a history (re-encryption progress) keep it in the daemon's state store."""
    for collector in collectors:
        sql.keep_history(collector, history, clock)


def remediation_files(settings: Configured) -> dict[str, Path]:
    """The configuration files remediations edit, by source name."""
    s = settings.sources
    found = (("localagent", s.localagent.path), ("clusterconfig", s.clusterconfig.path))
    return {name: path for name, path in found if path is not None}


def remediation_options(
    settings: Configured, collectors: Mapping[str, Collector], clock: Callable[[], datetime]
) -> dict[str, Any]:
    """What remediations need from the sources: gateway access, databases, the agent share, Credentials.json."""
    s = settings.sources
    return {
        **servicefabric.remediation_options(s.servicefabric, collectors, clock),
        **sql.remediation_options(s.sql),
        **agentshare.remediation_options(s.agentshare),
        **credentials.remediation_options(s.credentials, s.agentshare, collectors, s.configtemplate.infrastructure),
    }
