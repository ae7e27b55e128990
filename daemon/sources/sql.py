"""The `sql` source: AXDB and OrchestratorData over ODBC (settings, the collector, the databases remediations use)."""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from pydantic import Field, SecretStr, field_validator, model_validator

from collectors.base import Collector
from collectors.sql import AXDB, ORCHESTRATOR, AxdbOptions, DatabaseSpec, Probe, SqlCollector
from collectors.sql.connection import SQLITE_PREFIX
from collectors.sql.connstring import ConnectionStringError, parse_connection_string, secret_keywords
from collectors.sql.progress import ProgressHistory, RatePolicy
from collectors.sql.queries import JOB_CAPTION
from daemon.sources.base import Paths, SourceSettings, Strict, secret_text
from remediations.reencryption import DATABASES_OPTION

_PROBE_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,62}")
_READ_ONLY_START = re.compile(r"^\s*(SELECT|WITH)\b", re.IGNORECASE)


class DatabaseSettings(Strict):
    """One database: an ODBC connection string (SQL Server), or an embedded SQLite file (the demo).

    Windows authentication: `integrated_auth: true` (or `Trusted_Connection=yes` in the string): the
    service's own logon, no password. SQL authentication: `UID=` in the string and the password
    from CERTMON_SOURCES__SQL__<DB>__PASSWORD or `password_file`.
    """

    connection_string: str = ""
    database_file: Path | None = None
    password: SecretStr | None = None
    password_file: Path | None = None
    login_timeout_seconds: float = Field(15.0, gt=0)
    query_timeout_seconds: float = Field(60.0, gt=0)
    #: ApplicationIntent=ReadOnly for the collector's reads (an availability-group listener may route
    #: them to a readable secondary, whose msdb does not hold the primary's backup history)
    read_only_intent: bool = True
    #: Windows integrated authentication (adds Trusted_Connection=yes): the service's own logon
    #: through SSPI on Windows (a gMSA works), Kerberos ccache/keytab with the Linux driver
    integrated_auth: bool = False

    def password_text(self) -> str:
        """The SQL authentication password ('' for Windows authentication)."""
        return secret_text(self.password, self.password_file)

    @model_validator(mode="after")
    def _one_location(self) -> DatabaseSettings:
        if bool(self.connection_string) == (self.database_file is not None):
            raise ValueError("set exactly one of connection_string and database_file")
        if self.connection_string:
            if self.connection_string.lower().startswith("sqlite:"):
                raise ValueError(
                    "connection_string: a SQLite database is not an ODBC connection string; "
                    f"use database_file: {self.connection_string[len('sqlite:') :]}"
                )
            try:
                pairs = parse_connection_string(self.connection_string)
            except ConnectionStringError as err:
                raise ValueError(f"connection_string: {err}") from None
            leaked = secret_keywords(pairs)
            if leaked:
                raise ValueError(
                    f"connection_string: {leaked[0]}= does not belong in the configuration; "
                    "use password_file or the CERTMON_SOURCES__SQL__<DATABASE>__PASSWORD variable"
                )
        if self.integrated_auth:
            from collectors.sql.sqlauth import integrated_auth_conflict

            if self.database_file is not None:
                raise ValueError("integrated_auth applies to connection_string (SQL Server), not database_file")
            conflict = integrated_auth_conflict(self.connection_string, self.has_password())
            if conflict:
                raise ValueError(conflict)
        return self

    def has_password(self) -> bool:
        """True when a password is configured (environment or file), without reading it."""
        return self.password is not None or self.password_file is not None

    def odbc_url(self) -> str:
        """The connection string as it is used (Trusted_Connection=yes added for integrated_auth)."""
        from collectors.sql.sqlauth import with_integrated_auth

        return with_integrated_auth(self.connection_string) if self.integrated_auth else self.connection_string

    def auth_summary(self) -> str:
        """Whose credentials the database sees, for check-config (never the secret)."""
        from collectors.sql.sqlauth import describe_sql_auth

        if self.database_file is not None:
            return f"embedded SQLite file {self.database_file}"
        return describe_sql_auth(self.odbc_url(), self.has_password())


class ProbeSettings(Strict):
    """A re-encryption progress probe: one SELECT returning `remaining` (and optionally `total`)."""

    name: str
    sql: str

    @field_validator("name")
    @classmethod
    def _name(cls, name: str) -> str:
        if not _PROBE_NAME.fullmatch(name):
            raise ValueError("letters, digits, '_', '.' and '-' only (it becomes a metric label)")
        return name

    @field_validator("sql")
    @classmethod
    def _select(cls, sql: str) -> str:
        if not _READ_ONLY_START.match(sql):
            raise ValueError("a probe is one SELECT (or WITH ... SELECT) statement")
        if ";" in sql.strip().rstrip(";"):
            raise ValueError("a probe is one statement; remove the ';'")
        return sql.strip().rstrip(";")


class SqlSource(SourceSettings):
    """AXDB and OrchestratorData."""

    axdb: DatabaseSettings | None = None
    orchestrator_data: DatabaseSettings | None = None
    #: the LCS environment ID (DeploymentInstanceId) whose config.json OrchestratorData locates
    environment_id: str = ""
    job_caption: str = JOB_CAPTION
    #: database_name in msdb.dbo.backupset; default: the connection string's database
    backup_database: str = ""
    #: availability-group replicas whose own msdb records AXDB backups taken there (Database=msdb)
    backup_replicas: dict[str, DatabaseSettings] = Field(default_factory=dict)
    probes: list[ProbeSettings] = Field(default_factory=list)
    rate_window_days: float = Field(7.0, gt=0)
    min_rate_span_hours: float = Field(24.0, gt=0)
    stall_after_hours: float = Field(48.0, gt=0)

    @model_validator(mode="after")
    def _check(self) -> SqlSource:
        names = [p.name for p in self.probes]
        duplicates = sorted({n for n in names if names.count(n) > 1})
        if duplicates:
            raise ValueError(f"probe names must be unique: {', '.join(duplicates)}")
        if self.orchestrator_data is not None and not self.environment_id:
            raise ValueError("orchestrator_data needs environment_id (the LCS environment ID)")
        if self.min_rate_span_hours > self.rate_window_days * 24:
            raise ValueError("min_rate_span_hours must fit in rate_window_days")
        return self

    def auth_summary(self) -> str:
        """Whose credentials each database sees, for check-config."""
        found = (("axdb", self.axdb), ("orchestrator_data", self.orchestrator_data))
        return "; ".join(f"{name}: {db.auth_summary()}" for name, db in found if db is not None)


def database_spec(name: str, section: DatabaseSettings) -> DatabaseSpec:
    """How to reach one database, with its password read now."""
    url = f"{SQLITE_PREFIX}{section.database_file}" if section.database_file is not None else section.odbc_url()
    return DatabaseSpec(
        name=name,
        url=url,
        password=section.password_text(),
        login_timeout=section.login_timeout_seconds,
        query_timeout=section.query_timeout_seconds,
        read_only_intent=section.read_only_intent,
    )


def database_specs(section: SqlSource) -> dict[str, DatabaseSpec]:
    """The configured databases by target name (AXDB, OrchestratorData)."""
    found = ((AXDB, section.axdb), (ORCHESTRATOR, section.orchestrator_data))
    return {name: database_spec(name, db) for name, db in found if db is not None}


def collector(section: SqlSource) -> Collector | None:
    """The collector, when a database is configured."""
    specs = database_specs(section)
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


def keep_history(collector: Collector, history: ProgressHistory, clock: Callable[[], datetime]) -> None:
    """Re-encryption progress samples live in the daemon's state store, on the daemon's clock."""
    if isinstance(collector, SqlCollector):
        collector.use_progress_history(history, clock)


def paths(section: SqlSource) -> Paths:
    """Files this source reads."""
    found: Paths = []
    for key, database in (("axdb", section.axdb), ("orchestrator_data", section.orchestrator_data)):
        if database is not None:
            found.append((f"sources.sql.{key}.database_file", database.database_file))
            found.append((f"sources.sql.{key}.password_file", database.password_file))
    return found


def remediation_options(section: SqlSource) -> dict[str, Any]:
    """The databases enable-reencryption writes to."""
    return {DATABASES_OPTION: database_specs(section)}
