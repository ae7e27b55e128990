"""SQL Server: AXDB (data re-encryption, backups) and OrchestratorData (deployment artifacts), over pyodbc."""

from collectors.sql.collector import AXDB, ORCHESTRATOR, AxdbOptions, Probe, SqlCollector
from collectors.sql.connection import Database, DatabaseSpec, connect
from collectors.sql.reencryption import (
    last_full_backup,
    reencryption_complete,
    reencryption_enabled,
    reencryption_progress,
)

__all__ = [
    "AXDB",
    "ORCHESTRATOR",
    "AxdbOptions",
    "Database",
    "DatabaseSpec",
    "Probe",
    "SqlCollector",
    "connect",
    "last_full_backup",
    "reencryption_complete",
    "reencryption_enabled",
    "reencryption_progress",
]
