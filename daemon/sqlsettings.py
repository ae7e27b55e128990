"""Settings of the `sources.sql`, `sources.agentshare` and `sources.credentials` sections."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Literal

from pydantic import Field, SecretStr, field_validator, model_validator

from collectors.sql.queries import JOB_CAPTION
from daemon.sourcesettings import SourceSettings, Strict, secret_text

_PROBE_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,62}")
_READ_ONLY_START = re.compile(r"^\s*(SELECT|WITH)\b", re.IGNORECASE)


class DatabaseSettings(Strict):
    """One database: an ODBC connection string (SQL Server), or an embedded SQLite file (the demo).

    Windows authentication: `Trusted_Connection=yes` in the string. SQL authentication: `UID=` in
    the string and the password from CERTMON_SOURCES__SQL__<DB>__PASSWORD or `password_file`.
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

    def password_text(self) -> str:
        """The SQL authentication password ('' for Windows authentication)."""
        return secret_text(self.password, self.password_file)

    @model_validator(mode="after")
    def _one_location(self) -> DatabaseSettings:
        from collectors.sql.connstring import ConnectionStringError, parse_connection_string, secret_keywords

        if bool(self.connection_string) == (self.database_file is not None):
            raise ValueError("set exactly one of connection_string and database_file")
        if self.connection_string:
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
        return self


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


class AgentShareSource(SourceSettings):
    """The agent file share: config.json of the deployment (and, by default, Credentials.json)."""

    #: the share as this machine reaches it: a UNC path on Windows, a mount point on Linux
    path: Path | None = None
    #: the share as OrchestratorData writes it (\\server\share\agent); default: `path` when it is UNC
    unc: str = ""
    #: config.json location to read instead of asking OrchestratorData
    config_json: str = ""


class CredentialsRotateSettings(Strict):
    """Where credentials-json-rotate runs Configure-CredentialsJson.ps1 (an AOS node, over WinRM)."""

    node: str = ""
    script: str = "C:\\D365\\Infrastructure\\Configure-CredentialsJson.ps1"
    configuration_file: str = "C:\\D365\\Infrastructure\\ConfigTemplate.xml"
    timeout_seconds: float = Field(600.0, gt=0)
    #: the script reaches Credentials.json on the agent share: a WinRM second hop (docs/credentials-rotate.md)
    second_hop: Literal["refuse", "delegation"] = "refuse"

    @model_validator(mode="after")
    def _paths(self) -> CredentialsRotateSettings:
        from collectors.winrm.command import check_windows_path

        check_windows_path(self.script, ".ps1")
        check_windows_path(self.configuration_file, ".xml")
        return self


class CredentialsSource(SourceSettings):
    """Credentials.json: which certificate each value is encrypted to."""

    #: default: Credentials/Credentials.json under sources.agentshare.path
    path: Path | None = None
    rotate: CredentialsRotateSettings = Field(default_factory=CredentialsRotateSettings)
