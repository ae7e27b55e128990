"""Factories of the `sql`, `agentshare` and `credentials` sources (registered in daemon.sources)."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

from collectors.agentshare import AgentShare, AgentShareCollector, Locator
from collectors.base import Collector, Deadline
from collectors.credentials import CredentialsCollector
from collectors.sql import AXDB, ORCHESTRATOR, AxdbOptions, DatabaseSpec, Probe, SqlCollector
from collectors.sql.connection import SQLITE_PREFIX
from collectors.sql.orchestrator import config_json_locations
from collectors.sql.progress import RatePolicy
from daemon.settings import Settings
from daemon.sqlsettings import DatabaseSettings

CREDENTIALS_RELATIVE = ("Credentials", "Credentials.json")


def database_spec(name: str, section: DatabaseSettings) -> DatabaseSpec:
    """How to reach one database, with its password read now."""
    url = f"{SQLITE_PREFIX}{section.database_file}" if section.database_file is not None else section.connection_string
    return DatabaseSpec(
        name=name,
        url=url,
        password=section.password_text(),
        login_timeout=section.login_timeout_seconds,
        query_timeout=section.query_timeout_seconds,
        read_only_intent=section.read_only_intent,
    )


def database_specs(settings: Settings) -> dict[str, DatabaseSpec]:
    """The configured databases by target name (AXDB, OrchestratorData)."""
    section = settings.sources.sql
    found = ((AXDB, section.axdb), (ORCHESTRATOR, section.orchestrator_data))
    return {name: database_spec(name, db) for name, db in found if db is not None}


def sql(settings: Settings) -> Collector | None:
    """The sql source, when a database is configured."""
    section = settings.sources.sql
    specs = database_specs(settings)
    if not section.enabled or not specs:
        return None
    options = AxdbOptions(
        job_caption=section.job_caption,
        probes=tuple(Probe(p.name, p.sql) for p in section.probes),
        backup_database=section.backup_database,
        backup_replicas=tuple(database_spec(name, db) for name, db in section.backup_replicas.items()),
        policy=RatePolicy(
            rate_window=timedelta(days=section.rate_window_days),
            min_rate_span=timedelta(hours=section.min_rate_span_hours),
            stall_after=timedelta(hours=section.stall_after_hours),
        ),
    )
    return SqlCollector(
        specs.get(AXDB),
        specs.get(ORCHESTRATOR),
        environment_id=section.environment_id,
        options=options,
        timeout=section.timeout_seconds,
        interval=section.interval_seconds,
    )


def agent_share(settings: Settings) -> AgentShare | None:
    """The configured agent share, or None."""
    section = settings.sources.agentshare
    return AgentShare(section.path, section.unc) if section.path is not None else None


def locator(settings: Settings) -> Locator | None:
    """Looks config.json up in OrchestratorData, when it is configured."""
    section = settings.sources.sql
    spec = database_specs(settings).get(ORCHESTRATOR)
    if spec is None:
        return None
    environment_id = section.environment_id

    def locate(deadline: Deadline) -> tuple[str, ...]:
        return config_json_locations(spec, environment_id, deadline)

    return locate


def agentshare(settings: Settings) -> Collector | None:
    """The agentshare source, when the share is configured."""
    section = settings.sources.agentshare
    share = agent_share(settings)
    if not section.enabled or share is None:
        return None
    return AgentShareCollector(
        share,
        locate=locator(settings),
        config_json=section.config_json,
        environment_id=settings.sources.sql.environment_id,
        timeout=section.timeout_seconds,
        interval=section.interval_seconds,
    )


def credentials_path(settings: Settings) -> Path | None:
    """Credentials.json: configured, or in the agent share."""
    section = settings.sources.credentials
    if section.path is not None:
        return section.path
    share = settings.sources.agentshare.path
    return share.joinpath(*CREDENTIALS_RELATIVE) if share is not None else None


def credentials(settings: Settings) -> Collector | None:
    """The credentials source, when Credentials.json can be located."""
    section = settings.sources.credentials
    path = credentials_path(settings)
    if not section.enabled or path is None:
        return None
    return CredentialsCollector(path, timeout=section.timeout_seconds, interval=section.interval_seconds)


def configured_paths(settings: Settings) -> list[tuple[str, Path | None]]:
    """Files and folders these sources read, for check-config."""
    sources = settings.sources
    found: list[tuple[str, Path | None]] = []
    for key, section in (("axdb", sources.sql.axdb), ("orchestrator_data", sources.sql.orchestrator_data)):
        if section is not None:
            found.append((f"sources.sql.{key}.database_file", section.database_file))
            found.append((f"sources.sql.{key}.password_file", section.password_file))
    found.append(("sources.agentshare.path", sources.agentshare.path))
    found.append(("sources.credentials.path", credentials_path(settings)))
    return found
