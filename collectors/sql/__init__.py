"""SQL Server: AXDB (data re-encryption, backups) and OrchestratorData (deployment artifacts), over pyodbc."""

from collectors.sql.collector import AXDB, ORCHESTRATOR, AxdbOptions, Probe, SqlCollector
from collectors.sql.connection import Database, DatabaseSpec, connect
from collectors.sql.reencryption import (
    axdb_backup_evidence,
    last_full_backup,
    reencryption_complete,
    reencryption_complete_evidence,
    reencryption_enabled,
    reencryption_enabled_evidence,
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
    "axdb_backup_evidence",
    "connect",
    "last_full_backup",
    "reencryption_complete",
    "reencryption_complete_evidence",
    "reencryption_enabled",
    "reencryption_enabled_evidence",
    "reencryption_progress",
]
