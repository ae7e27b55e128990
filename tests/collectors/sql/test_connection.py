"""Connection failures map to reasons, never leak the password, and honour the deadline."""

from __future__ import annotations

import socket
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from collectors.base import Deadline
from collectors.errors import CollectorError, Reason
from collectors.sql import AxdbOptions, Probe, SqlCollector
from collectors.sql.connection import DatabaseSpec, Statement, connect
from collectors.sql.connstring import (
    ConnectionStringError,
    build_connection_string,
    keyword,
    parse_connection_string,
)
from simulator.axdb import axdb_ddl, create_sqlite
from simulator.postgres import PgEnvironment
from tests.conftest import free_port

SELECT_ONE = Statement("one", "SELECT 1")


def spec_for(pg: PgEnvironment, **changes: object) -> DatabaseSpec:
    values: dict[str, object] = {
        "name": "AXDB",
        "url": pg.connection_string(pg.axdb),
        "password": pg.password,
        "login_timeout": 2,
        "query_timeout": 5,
    }
    values.update(changes)
    return DatabaseSpec(**values)  # type: ignore[arg-type]


def failure(spec: DatabaseSpec, seconds: float = 10) -> CollectorError:
    with pytest.raises(CollectorError) as caught:
        connect(spec, Deadline.after(seconds))
    return caught.value


def test_connects_and_reads(pg: PgEnvironment) -> None:
    with connect(spec_for(pg), Deadline.after(10)) as db:
        assert db.dialect == "postgresql"
        assert db.query(SELECT_ONE) == [(1,)]


def test_wrong_password_is_auth_failed_and_never_shown(pg: PgEnvironment) -> None:
    secret = "Wrong-Pa55word-xyz"
    err = failure(spec_for(pg, password=secret))
    assert err.reason is Reason.AUTH_FAILED
    assert "password authentication failed" in str(err)
    assert secret not in str(err) and pg.password not in str(err)
    assert str(err).startswith(f"AXDB (server 127.0.0.1, database {pg.axdb})")


def test_refused(pg: PgEnvironment) -> None:
    url = pg.connection_string(pg.axdb).replace(f"Port={pg.server.port}", f"Port={free_port()}")
    err = failure(spec_for(pg, url=url))
    assert err.reason is Reason.CONNECTION_REFUSED
    assert pg.password not in str(err)


@pytest.fixture
def silent_port() -> Iterator[int]:
    """A port that accepts TCP connections and never answers."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen(8)
        yield int(sock.getsockname()[1])


def test_login_timeout(pg: PgEnvironment, silent_port: int) -> None:
    url = pg.connection_string(pg.axdb).replace(f"Port={pg.server.port}", f"Port={silent_port}")
    started = time.monotonic()
    err = failure(spec_for(pg, url=url, login_timeout=30), seconds=2)
    assert err.reason is Reason.TIMEOUT
    # The deadline (2 s) wins over the configured login timeout (30 s).
    assert time.monotonic() - started < 5


def test_missing_database_is_not_found(pg: PgEnvironment) -> None:
    url = pg.connection_string("no_such_database")
    err = failure(spec_for(pg, url=url))
    assert err.reason is Reason.NOT_FOUND and "does not exist" in str(err)


def test_missing_driver_is_a_config_error(pg: PgEnvironment) -> None:
    url = pg.connection_string(pg.axdb).replace("PostgreSQL Unicode", "ODBC Driver 18 for SQL Server")
    err = failure(spec_for(pg, url=url))
    assert err.reason is Reason.CONFIG_ERROR and "driver" in str(err).lower()


def test_malformed_connection_string_is_a_config_error() -> None:
    err = failure(DatabaseSpec("AXDB", "Driver={PostgreSQL Unicode;Server=x"))
    assert err.reason is Reason.CONFIG_ERROR and "not closed" in str(err)


def test_query_timeout_stops_a_slow_probe(pg: PgEnvironment) -> None:
    collector = SqlCollector(
        spec_for(pg, query_timeout=1), options=AxdbOptions(probes=(Probe("slow", "SELECT pg_sleep(5) AS remaining"),))
    )
    started = time.monotonic()
    with pytest.raises(CollectorError) as caught:
        collector.collect("AXDB", Deadline.after(20))
    assert caught.value.reason is Reason.TIMEOUT
    assert time.monotonic() - started < 4


def test_read_only_intent_refuses_writes(pg: PgEnvironment) -> None:
    with connect(spec_for(pg), Deadline.after(10)) as db, pytest.raises(CollectorError) as caught:
        db.execute(Statement("write", "UPDATE SECURITYCONFIG SET VALUE = ? WHERE KEY_ = ?"), ("x", "y"))
    assert caught.value.reason is Reason.PERMISSION_DENIED
    with connect(spec_for(pg), Deadline.after(10), read_only=False) as db:
        assert db.execute(Statement("write", "UPDATE SECURITYCONFIG SET VALUE = ? WHERE KEY_ = ?"), ("x", "y")) == 0


def test_sqlite_missing_file_and_garbage(tmp_path: Path) -> None:
    err = failure(DatabaseSpec("AXDB", f"sqlite:{tmp_path / 'missing.sqlite'}"))
    assert err.reason is Reason.NOT_FOUND
    garbage = tmp_path / "garbage.sqlite"
    garbage.write_bytes(b"this is not a database" * 100)
    with pytest.raises(CollectorError) as caught:
        SqlCollector(DatabaseSpec("AXDB", f"sqlite:{garbage}")).collect("AXDB", Deadline.after(5))
    assert caught.value.reason is Reason.PARSE_ERROR


def test_sqlite_read_only_and_query_timeout(tmp_path: Path) -> None:
    path = tmp_path / "AXDB.sqlite"
    create_sqlite(path, axdb_ddl("sqlite"))
    spec = DatabaseSpec("AXDB", f"sqlite:{path}", query_timeout=0.3)
    with connect(spec, Deadline.after(5)) as db:
        with pytest.raises(CollectorError) as caught:
            db.execute(Statement("write", "DELETE FROM SECURITYCONFIG"))
        assert caught.value.reason is Reason.PERMISSION_DENIED
        endless = Statement(
            "endless", "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n) SELECT COUNT(*) FROM n"
        )
        with pytest.raises(CollectorError) as caught:
            db.query(endless)
        assert caught.value.reason is Reason.TIMEOUT


def test_connection_string_parsing() -> None:
    pairs = parse_connection_string(
        "Driver={ODBC Driver 18 for SQL Server};Server=tcp:sql1.contoso.lab,1433; Database=AXDB;"
        "Encrypt=yes;TrustServerCertificate=no;Trusted_Connection=yes;App={a;b}}c}"
    )
    assert keyword(pairs, "driver") == "ODBC Driver 18 for SQL Server"
    assert keyword(pairs, "data source", "server") == "tcp:sql1.contoso.lab,1433"
    assert keyword(pairs, "APP") == "a;b}c"
    assert parse_connection_string(build_connection_string(pairs)) == pairs
    for bad in ("Server", "=x", "A={unclosed", "A=1;a=2", "A={x}y"):
        with pytest.raises(ConnectionStringError):
            parse_connection_string(bad)


def test_spec_label_names_place_not_user() -> None:
    spec = DatabaseSpec("AXDB", "Driver={ODBC Driver 18 for SQL Server};Server=sql1;Database=AXDB;UID=axdbadmin")
    assert spec.label == "AXDB (server sql1, database AXDB)"
    assert "axdbadmin" not in spec.label and "s3cr3t-value" not in repr(DatabaseSpec("x", "y", "s3cr3t-value"))


def test_a_statement_answering_too_many_rows_or_a_huge_value_is_refused(pg: PgEnvironment) -> None:
    """A hostile or broken database cannot make the collector read without bound (issue 18, item 2)."""
    from collectors.sql.connection import MAX_ROWS, MAX_VALUE_CHARS

    many = Statement("many rows", f"SELECT n FROM generate_series(1, {MAX_ROWS + 5}) AS n")
    huge = Statement("huge value", f"SELECT repeat('x', {MAX_VALUE_CHARS + 1}) AS v")
    with connect(spec_for(pg), Deadline.after(10)) as db:
        with pytest.raises(CollectorError) as rows:
            db.query(many)
        assert rows.value.reason is Reason.BAD_OUTPUT and f"many rows: more than {MAX_ROWS:,} rows" in str(rows.value)
        assert len(db.query(many, limit=3)) == 3  # an explicit limit reads that many and no error
        with pytest.raises(CollectorError) as value:
            db.query(huge)
        assert value.value.reason is Reason.BAD_OUTPUT and "huge value: a value of 1,000,001 characters" in str(
            value.value
        )
        assert db.query(SELECT_ONE) == [(1,)]  # the connection is still usable
