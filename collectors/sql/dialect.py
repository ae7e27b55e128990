"""The one place where SQL dialects differ: SQL Server in production, PostgreSQL in tests, SQLite in the demo.

Every statement certmon runs is written in T-SQL that PostgreSQL and SQLite also accept, with
one exception: the backup history lives in another database on SQL Server
(`msdb.dbo.backupset`, a three-part name). Statements name such objects as `{backupset}`;
`render` fills in the name each dialect keeps it under. Timeouts and read-only intent are
set differently per ODBC driver and are chosen here too.
"""

from __future__ import annotations

from enum import StrEnum


class Dialect(StrEnum):
    """The database products certmon talks to."""

    TSQL = "tsql"
    POSTGRESQL = "postgresql"
    SQLITE = "sqlite"


# Objects outside the business database. The test database keeps msdb's table in a schema
# named msdb; the demo's SQLite file keeps it next to the AX tables.
OBJECT_NAMES: dict[str, dict[Dialect, str]] = {
    "backupset": {
        Dialect.TSQL: "msdb.dbo.backupset",
        Dialect.POSTGRESQL: "msdb.backupset",
        Dialect.SQLITE: "backupset",
    },
}

# SQL_DBMS_NAME as the ODBC drivers report it.
_DBMS = {"microsoft sql server": Dialect.TSQL, "postgresql": Dialect.POSTGRESQL}


def render(text: str, dialect: Dialect) -> str:
    """The statement for one dialect: `{name}` placeholders replaced by the object's name there."""
    return text.format_map({name: names[dialect] for name, names in OBJECT_NAMES.items()})


def dialect_of_dbms(dbms_name: str) -> Dialect | None:
    """The dialect of a DBMS by the name its ODBC driver reports, or None when certmon does not know it."""
    return _DBMS.get(dbms_name.strip().lower())


def driver_dialect(driver: str) -> Dialect | None:
    """The dialect an ODBC driver name implies ('ODBC Driver 18 for SQL Server', 'PostgreSQL Unicode')."""
    name = driver.strip().strip("{}").lower()
    if "sql server" in name:
        return Dialect.TSQL
    if "postgres" in name or "psqlodbc" in name:
        return Dialect.POSTGRESQL
    return None


def read_only_keywords(dialect: Dialect | None) -> dict[str, str]:
    """Connection-string keywords that declare read-only intent for a driver.

    SQL Server: `ApplicationIntent=ReadOnly` (an availability-group listener routes to a readable
    secondary). psqlODBC: `ReadOnly=1` (the driver refuses anything but SELECT).
    """
    if dialect is Dialect.TSQL:
        return {"ApplicationIntent": "ReadOnly"}
    if dialect is Dialect.POSTGRESQL:
        return {"ReadOnly": "1"}
    return {}
