"""The AXDB and OrchestratorData tables certmon reads, created in PostgreSQL (tests) or SQLite (demo).

Only the columns certmon touches, plus PARTITION, typed as SQL Server types map to each
backend. `AxdbWriter` seeds rows through any DB-API connection with `?` parameters, the way
the AOS and the batch framework would leave them.
"""

from __future__ import annotations

import re
import sqlite3
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

INITIAL_PARTITION = 5637144576
# Common column types per backend: SQL Server name -> (PostgreSQL, SQLite).
TYPES = {
    "nvarchar": ("varchar", "TEXT"),
    "int": ("integer", "INTEGER"),
    "bigint": ("bigint", "INTEGER"),
    "datetime": ("timestamp", "TEXT"),
    "varbinary": ("bytea", "BLOB"),
    "smallint": ("smallint", "INTEGER"),
}

AXDB_TABLES: tuple[tuple[str, str], ...] = (
    ("PARTITIONS", "PARTITIONKEY nvarchar(8) NOT NULL, NAME nvarchar(60) NOT NULL, RECID bigint PRIMARY KEY"),
    (
        "SYSFLIGHTING",
        "FLIGHTNAME nvarchar(100) NOT NULL, ENABLED int NOT NULL DEFAULT 0, FLIGHTSERVICEID bigint NOT NULL DEFAULT 0,"
        f" PARTITION bigint NOT NULL DEFAULT {INITIAL_PARTITION}, UNIQUE (FLIGHTNAME, FLIGHTSERVICEID, PARTITION)",
    ),
    ("SECURITYCONFIG", "KEY_ nvarchar(100) NOT NULL UNIQUE, VALUE nvarchar(1000) NOT NULL DEFAULT ''"),
    (
        "BATCHJOB",
        "RECID bigint PRIMARY KEY, CAPTION nvarchar(100) NOT NULL, STATUS int NOT NULL, STARTDATETIME datetime,"
        " ENDDATETIME datetime, ORIGSTARTDATETIME datetime, RECURRENCEDATA varbinary, COMPANY nvarchar(4),"
        f" PARTITION bigint NOT NULL DEFAULT {INITIAL_PARTITION}",
    ),
    (
        "BATCHJOBHISTORY",
        "RECID bigint PRIMARY KEY, BATCHJOBID bigint NOT NULL, CAPTION nvarchar(100) NOT NULL, STATUS int NOT NULL,"
        " STARTDATETIME datetime, ENDDATETIME datetime, COMPANY nvarchar(4),"
        f" PARTITION bigint NOT NULL DEFAULT {INITIAL_PARTITION}",
    ),
    # Stands in for the encrypted fields an operator's probe would count (the lab's probe reads it).
    (
        "LABENCRYPTEDFIELD",
        "RECID bigint PRIMARY KEY, TABLENAME nvarchar(81) NOT NULL, FIELDNAME nvarchar(81) NOT NULL,"
        f" CERTTHUMBPRINT nvarchar(40) NOT NULL, PARTITION bigint NOT NULL DEFAULT {INITIAL_PARTITION}",
    ),
)
BACKUPSET_COLUMNS = (
    "database_name nvarchar(128) NOT NULL, type nvarchar(1) NOT NULL, backup_start_date datetime,"
    " backup_finish_date datetime, time_zone smallint"
)
_TYPE_WORD = re.compile(r"\b(" + "|".join(TYPES) + r")\b")
ORCHESTRATOR_TABLES: tuple[tuple[str, str], ...] = (
    (
        "DeploymentInstanceArtifact",
        "DeploymentInstanceId nvarchar(64) NOT NULL, AssetId nvarchar(260) NOT NULL, Location nvarchar(1000)",
    ),
)


def _columns(text: str, backend: str) -> str:
    index = 0 if backend == "postgresql" else 1
    return _TYPE_WORD.sub(lambda m: TYPES[m.group(1)][index], text)


def _ddl(tables: Sequence[tuple[str, str]], backend: str) -> list[str]:
    return [f"CREATE TABLE {name} ({_columns(columns, backend)})" for name, columns in tables]


def axdb_ddl(backend: str) -> list[str]:
    """CREATE statements for AXDB, backupset included (schema msdb in PostgreSQL, a plain table in SQLite)."""
    statements = _ddl(AXDB_TABLES, backend)
    if backend == "postgresql":
        statements += ["CREATE SCHEMA msdb", f"CREATE TABLE msdb.backupset ({_columns(BACKUPSET_COLUMNS, backend)})"]
    else:
        statements.append(f"CREATE TABLE backupset ({_columns(BACKUPSET_COLUMNS, backend)})")
    return statements


def orchestrator_ddl(backend: str) -> list[str]:
    """CREATE statements for OrchestratorData."""
    return _ddl(ORCHESTRATOR_TABLES, backend)


def stamp(moment: datetime | None, backend: str) -> Any:
    """AX keeps naive UTC datetimes; SQLite keeps them as text."""
    if moment is None:
        return None
    naive = moment.astimezone(UTC).replace(tzinfo=None) if moment.tzinfo else moment
    return naive.isoformat(sep=" ") if backend == "sqlite" else naive


class AxdbWriter:
    """Seeds AXDB rows through a DB-API connection (autocommit, or commit() yourself)."""

    def __init__(self, connection: Any, backend: str) -> None:
        self.connection = connection
        self.backend = backend
        self._recid = 5637145000

    def _run(self, sql: str, *parameters: Any) -> None:
        cursor = self.connection.cursor()
        try:
            cursor.execute(sql, parameters)
        finally:
            cursor.close()

    def next_recid(self) -> int:
        """A fresh RECID."""
        self._recid += 1
        return self._recid

    def resume_recids(self) -> None:
        """Continue after the highest RECID in use, for a writer on a database seeded earlier."""
        cursor = self.connection.cursor()
        try:
            for table in ("BATCHJOB", "BATCHJOBHISTORY", "LABENCRYPTEDFIELD"):
                cursor.execute(f"SELECT MAX(RECID) FROM {table}")  # noqa: S608 - fixed names
                row = cursor.fetchone()
                if row is not None and row[0] is not None:
                    self._recid = max(self._recid, int(row[0]))
        finally:
            cursor.close()

    def partition(self, key: str = "initial", recid: int = INITIAL_PARTITION) -> None:
        """A PARTITIONS row: the initial partition, or another one to prove reads stay in 'initial'."""
        self._run("INSERT INTO PARTITIONS (PARTITIONKEY, NAME, RECID) VALUES (?, ?, ?)", key, key.title(), recid)

    def flight(self, name: str, enabled: int, service_id: int = 0, partition: int = INITIAL_PARTITION) -> None:
        """A SYSFLIGHTING row."""
        self._run(
            "INSERT INTO SYSFLIGHTING (FLIGHTNAME, ENABLED, FLIGHTSERVICEID, PARTITION) VALUES (?, ?, ?, ?)",
            name,
            enabled,
            service_id,
            partition,
        )

    def config(self, key: str, value: str) -> None:
        """A SECURITYCONFIG row."""
        self._run("INSERT INTO SECURITYCONFIG (KEY_, VALUE) VALUES (?, ?)", key, value)

    def job(
        self,
        caption: str,
        status: int,
        start: datetime | None,
        end: datetime | None = None,
        *,
        recurring: bool = True,
        partition: int = INITIAL_PARTITION,
    ) -> int:
        """A BATCHJOB row; returns its RECID."""
        recid = self.next_recid()
        self._run(
            "INSERT INTO BATCHJOB (RECID, CAPTION, STATUS, STARTDATETIME, ENDDATETIME, ORIGSTARTDATETIME,"
            " RECURRENCEDATA, COMPANY, PARTITION) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
            recid,
            caption,
            status,
            stamp(start, self.backend),
            stamp(end or datetime(1900, 1, 1), self.backend),
            stamp(start, self.backend),
            b"\x07\xfd\x00\x01" if recurring else None,
            "dat",
            partition,
        )
        return recid

    def run(
        self,
        job: int,
        caption: str,
        status: int,
        start: datetime,
        end: datetime | None,
        *,
        partition: int = INITIAL_PARTITION,
    ) -> int:
        """A BATCHJOBHISTORY row; returns its RECID."""
        recid = self.next_recid()
        self._run(
            "INSERT INTO BATCHJOBHISTORY (RECID, BATCHJOBID, CAPTION, STATUS, STARTDATETIME, ENDDATETIME, COMPANY,"
            " PARTITION) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            recid,
            job,
            caption,
            status,
            stamp(start, self.backend),
            stamp(end or datetime(1900, 1, 1), self.backend),
            "dat",
            partition,
        )
        return recid

    def backup(self, database: str, kind: str, finish_local: datetime, time_zone: int) -> None:
        """A msdb backupset row; times are the server's local time, as SQL Server records them."""
        table = "msdb.backupset" if self.backend == "postgresql" else "backupset"
        self._run(
            f"INSERT INTO {table} (database_name, type, backup_start_date, backup_finish_date, time_zone)"  # noqa: S608 - fixed names
            " VALUES (?, ?, ?, ?, ?)",
            database,
            kind,
            stamp(finish_local, self.backend),
            stamp(finish_local, self.backend),
            time_zone,
        )

    def encrypted_fields(self, thumbprint: str, count: int, table: str = "CUSTTABLE") -> None:
        """Rows standing for values encrypted with a certificate."""
        for _ in range(count):
            self._run(
                "INSERT INTO LABENCRYPTEDFIELD (RECID, TABLENAME, FIELDNAME, CERTTHUMBPRINT) VALUES (?, ?, ?, ?)",
                self.next_recid(),
                table,
                "ENCRYPTEDVALUE",
                thumbprint,
            )

    def reencrypt(self, old: str, new: str, count: int) -> int:
        """Move up to `count` rows from the old certificate to the new one (what the batch job does)."""
        cursor = self.connection.cursor()
        try:
            cursor.execute("SELECT RECID FROM LABENCRYPTEDFIELD WHERE CERTTHUMBPRINT = ? ORDER BY RECID", (old,))
            recids = [row[0] for row in cursor.fetchall()][:count]
            for recid in recids:
                cursor.execute("UPDATE LABENCRYPTEDFIELD SET CERTTHUMBPRINT = ? WHERE RECID = ?", (new, recid))
        finally:
            cursor.close()
        return len(recids)


def artifact(connection: Any, environment_id: str, asset: str, location: str) -> None:
    """A DeploymentInstanceArtifact row."""
    cursor = connection.cursor()
    try:
        cursor.execute(
            "INSERT INTO DeploymentInstanceArtifact (DeploymentInstanceId, AssetId, Location) VALUES (?, ?, ?)",
            (environment_id, asset, location),
        )
    finally:
        cursor.close()


LAB_PROBE_SQL = (
    "SELECT SUM(CASE WHEN E.CERTTHUMBPRINT = '{old}' THEN 1 ELSE 0 END) AS remaining, COUNT(*) AS total"
    " FROM LABENCRYPTEDFIELD AS E"
)


def create_sqlite(path: Path, statements: Sequence[str]) -> None:
    """A new SQLite database file with these tables."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.unlink(missing_ok=True)
    connection = sqlite3.connect(path)
    try:
        for statement in statements:
            connection.execute(statement)
        connection.commit()
    finally:
        connection.close()


def open_sqlite(path: Path) -> sqlite3.Connection:
    """An autocommit connection to a SQLite database file, for seeding."""
    return sqlite3.connect(path, isolation_level=None, check_same_thread=False)
