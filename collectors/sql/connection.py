"""Opening a database: ODBC (pyodbc) for SQL Server and PostgreSQL, Python's sqlite3 for `sqlite:` URLs.

Both are DB-API 2.0 with `?` parameters, so the code that reads AXDB and OrchestratorData is
the same whatever the backend; `Database` adds the dialect (see dialect.py), timeouts, and
errors mapped to reasons. The SQLite path exists for the demo, which must run on a machine
with no database server and no ODBC driver installed: sqlite3 ships with Python, while
Debian's libsqliteodbc would be one more system package for `scripts/demo` to install.
"""

from __future__ import annotations

import contextlib
import sqlite3
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from types import TracebackType
from typing import Any

from collectors.base import Deadline
from collectors.errors import CollectorError, Reason
from collectors.secrets import redact, register_secret
from collectors.sql.connstring import (
    DATABASE_KEYWORDS,
    PLACE_KEYWORDS,
    ConnectionStringError,
    build_connection_string,
    keyword,
    parse_connection_string,
    with_keywords,
)
from collectors.sql.dialect import Dialect, dialect_of_dbms, driver_dialect, read_only_keywords, render
from collectors.sql.errors import classify_odbc, classify_sqlite

SQLITE_PREFIX = "sqlite:"


@cache
def _pyodbc() -> Any:
    """pyodbc, imported on first use: it needs the ODBC driver manager (unixODBC on Linux), which the
    demo's SQLite databases do not, so a machine without it still runs the demo."""
    import pyodbc

    return pyodbc


@cache
def database_errors() -> tuple[type[Exception], ...]:
    """The exception classes of both backends (sqlite3 alone when pyodbc cannot load)."""
    try:
        return (sqlite3.Error, _pyodbc().Error)
    except ImportError:
        return (sqlite3.Error,)


#: Rows one statement may answer: certmon's queries read a handful (a flight, a key, a job's runs);
#: past this a table is not what it should be, and reading it whole would cost the daemon's memory.
MAX_ROWS = 10_000
#: Characters (or bytes) of one value: config.json locations, configuration values, job captions.
MAX_VALUE_CHARS = 1_000_000

# SQLite checks the deadline every this many virtual-machine instructions.
SQLITE_PROGRESS_STEPS = 20_000


@dataclass(frozen=True)
class DatabaseSpec:
    """How to reach one database: an ODBC connection string (without password) or `sqlite:PATH`."""

    name: str
    url: str
    password: str = field(default="", repr=False)
    login_timeout: float = 15.0
    query_timeout: float = 60.0
    read_only_intent: bool = True

    @property
    def is_sqlite(self) -> bool:
        """True for an embedded SQLite database file."""
        return self.url.startswith(SQLITE_PREFIX)

    @property
    def sqlite_path(self) -> Path:
        """The file of a `sqlite:` URL."""
        return Path(self.url[len(SQLITE_PREFIX) :])

    def pairs(self) -> list[tuple[str, str]]:
        """The connection string's keywords; ValueError when it is malformed."""
        return parse_connection_string(self.url)

    @property
    def label(self) -> str:
        """`AXDB (server sql1, database AXDB)`: where the connection goes, never who or with what."""
        if self.is_sqlite:
            return f"{self.name} ({self.sqlite_path})"
        try:
            pairs = self.pairs()
        except ConnectionStringError:
            return self.name
        place = keyword(pairs, *PLACE_KEYWORDS)
        database = self.database_name
        parts = (f"server {place}" if place else "", f"database {database}" if database else "")
        details = ", ".join(p for p in parts if p)
        return f"{self.name} ({details})" if details else self.name

    @property
    def database_name(self) -> str:
        """The database the connection string opens (`Database=` / `Initial Catalog=`), or ''."""
        if self.is_sqlite:
            return self.sqlite_path.stem
        try:
            return keyword(self.pairs(), *DATABASE_KEYWORDS)
        except ConnectionStringError:
            return ""


@dataclass(frozen=True, slots=True)
class Statement:
    """One SQL text, written in T-SQL, with `{object}` placeholders for names that differ by dialect."""

    name: str
    text: str

    def render(self, dialect: Dialect) -> str:
        """The text for a dialect."""
        return render(self.text, dialect)


class Database:
    """An open connection with its dialect; every statement runs with bound parameters."""

    def __init__(self, spec: DatabaseSpec, raw: Any, dialect: Dialect) -> None:
        self.spec = spec
        self.raw = raw
        self.dialect = dialect

    def _error(self, err: Exception, statement: Statement | None) -> CollectorError:
        is_sqlite = self.dialect is Dialect.SQLITE
        reason, text = classify_sqlite(err) if is_sqlite else classify_odbc(err)
        where = f" ({statement.name})" if statement is not None else ""
        return CollectorError(self.spec.label, reason, redact(f"{text}{where}"))

    def query(
        self, statement: Statement, parameters: Sequence[Any] = (), limit: int | None = None
    ) -> list[tuple[Any, ...]]:
        """Run a SELECT and return its rows (the first `limit` of them: no TOP/LIMIT dialect needed)."""
        return self.query_named(statement, parameters, limit)[1]

    def query_named(
        self, statement: Statement, parameters: Sequence[Any] = (), limit: int | None = None
    ) -> tuple[list[str], list[tuple[Any, ...]]]:
        """Run a SELECT; return the lower-cased column names and the (first `limit`) rows."""
        cursor = self.raw.cursor()
        try:
            cursor.execute(statement.render(self.dialect), tuple(parameters))
            names = [str(column[0]).lower() for column in cursor.description or ()]
            rows = cursor.fetchmany(limit) if limit is not None else cursor.fetchmany(MAX_ROWS + 1)
            if limit is None and len(rows) > MAX_ROWS:
                raise CollectorError(
                    self.spec.label, Reason.BAD_OUTPUT, f"{statement.name}: more than {MAX_ROWS:,} rows; not read"
                )
            return names, [self._bounded(statement, tuple(row)) for row in rows]
        except database_errors() as err:
            raise self._error(err, statement) from err
        finally:
            cursor.close()

    def _bounded(self, statement: Statement, row: tuple[Any, ...]) -> tuple[Any, ...]:
        for value in row:
            if isinstance(value, str | bytes | bytearray) and len(value) > MAX_VALUE_CHARS:
                raise CollectorError(
                    self.spec.label,
                    Reason.BAD_OUTPUT,
                    f"{statement.name}: a value of {len(value):,} characters (at most {MAX_VALUE_CHARS:,} are read)",
                )
        return row

    def execute(self, statement: Statement, parameters: Sequence[Any] = ()) -> int:
        """Run a statement that changes rows; returns how many it touched."""
        cursor = self.raw.cursor()
        try:
            cursor.execute(statement.render(self.dialect), tuple(parameters))
            return int(cursor.rowcount)
        except database_errors() as err:
            raise self._error(err, statement) from err
        finally:
            cursor.close()

    def commit(self) -> None:
        """Commit the open transaction."""
        try:
            self.raw.commit()
        except database_errors() as err:
            raise self._error(err, None) from err

    def rollback(self) -> None:
        """Roll the open transaction back (best effort: the connection may already be gone)."""
        with contextlib.suppress(*database_errors()):
            self.raw.rollback()

    def close(self) -> None:
        """Close the connection; an open transaction is rolled back by the server."""
        with contextlib.suppress(*database_errors()):
            self.raw.close()

    def __enter__(self) -> Database:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, value: BaseException | None, trace: TracebackType | None
    ) -> None:
        self.close()


def _seconds(limit: float, deadline: Deadline | None) -> float:
    if deadline is None:
        return limit
    return max(0.1, min(limit, deadline.remaining()))


def connect(
    spec: DatabaseSpec, deadline: Deadline | None = None, *, read_only: bool = True, autocommit: bool = True
) -> Database:
    """Open the database before the deadline; CollectorError with a reason when it cannot be opened."""
    register_secret(spec.password)
    if spec.is_sqlite:
        return _connect_sqlite(spec, deadline, read_only=read_only, autocommit=autocommit)
    return _connect_odbc(spec, deadline, read_only=read_only, autocommit=autocommit)


def _connect_odbc(spec: DatabaseSpec, deadline: Deadline | None, *, read_only: bool, autocommit: bool) -> Database:
    from collectors.errors import Reason

    try:
        pairs = spec.pairs()
    except ConnectionStringError as err:
        raise CollectorError(spec.name, Reason.CONFIG_ERROR, f"connection string: {err}") from err
    family = driver_dialect(keyword(pairs, "driver"))
    if read_only and spec.read_only_intent:
        pairs = with_keywords(pairs, read_only_keywords(family))
    if spec.password:
        pairs = [*pairs, ("PWD", spec.password)]
    login = _seconds(spec.login_timeout, deadline)
    try:
        pyodbc = _pyodbc()
    except ImportError as err:
        message = f"pyodbc cannot load the ODBC driver manager (install unixODBC on Linux): {err}"
        raise CollectorError(spec.label, Reason.CONFIG_ERROR, message) from err
    try:
        # pyodbc's timeout is the login timeout (whole seconds); the query timeout is set below.
        raw = pyodbc.connect(build_connection_string(pairs), timeout=max(1, round(login)), autocommit=autocommit)
    except pyodbc.Error as err:
        reason, text = classify_odbc(err)
        raise CollectorError(spec.label, reason, redact(text)) from err
    try:
        dbms = str(raw.getinfo(pyodbc.SQL_DBMS_NAME))
        dialect = dialect_of_dbms(dbms)
        if dialect is None:
            raise CollectorError(spec.label, Reason.CONFIG_ERROR, f"unsupported database product {dbms!r}")
        database = Database(spec, raw, dialect)
        _query_timeout(database, _seconds(spec.query_timeout, deadline))
    except BaseException:
        raw.close()
        raise
    return database


def _query_timeout(database: Database, seconds: float) -> None:
    """Bound every statement: SQL Server through the ODBC statement attribute, PostgreSQL on the server."""
    if database.dialect is Dialect.TSQL:
        database.raw.timeout = max(1, round(seconds))
        return
    # psqlODBC does not implement SQL_ATTR_QUERY_TIMEOUT; PostgreSQL enforces statement_timeout itself.
    database.query(SET_STATEMENT_TIMEOUT, ("statement_timeout", str(max(1, round(seconds * 1000))), False))
    if not database.raw.autocommit:
        # set_config ran inside the transaction that apply is about to use: keep it, start clean.
        database.commit()


SET_STATEMENT_TIMEOUT = Statement("statement timeout", "SELECT set_config(?, ?, ?)")


def _connect_sqlite(spec: DatabaseSpec, deadline: Deadline | None, *, read_only: bool, autocommit: bool) -> Database:
    from collectors.errors import Reason

    path = spec.sqlite_path
    if not path.is_file():
        raise CollectorError(spec.label, Reason.NOT_FOUND, "database file not found")
    mode = "ro" if read_only else "rw"
    uri = f"{path.resolve().as_uri()}?mode={mode}"
    try:
        raw = sqlite3.connect(
            uri,
            uri=True,
            timeout=_seconds(spec.login_timeout, deadline),
            isolation_level=None if autocommit else "DEFERRED",
            check_same_thread=False,
        )
    except sqlite3.Error as err:
        reason, text = classify_sqlite(err)
        raise CollectorError(spec.label, reason, text) from err
    stop_at = time.monotonic() + _seconds(spec.query_timeout, deadline)
    # The progress handler is SQLite's only way to abandon a statement that runs too long.
    raw.set_progress_handler(lambda: int(time.monotonic() > stop_at), SQLITE_PROGRESS_STEPS)
    return Database(spec, raw, Dialect.SQLITE)
