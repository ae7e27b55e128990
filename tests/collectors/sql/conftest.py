"""The two database backends the SQL source runs on in tests: PostgreSQL through psqlODBC, and SQLite."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from collectors.sql import DatabaseSpec
from simulator.axdb import AxdbWriter, axdb_ddl, create_sqlite, open_sqlite, orchestrator_ddl
from simulator.postgres import PgEnvironment


@dataclass
class Databases:
    """Specs certmon connects with, and seeding connections."""

    backend: str
    axdb: DatabaseSpec
    orchestrator: DatabaseSpec
    ax: AxdbWriter
    orch: Any


@pytest.fixture(params=["postgresql", "sqlite"])
def databases(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Databases]:
    """AXDB and OrchestratorData on each backend, with the initial partition in place."""
    if request.param == "postgresql":
        pg: PgEnvironment = request.getfixturevalue("pg")
        ax_conn, orch_conn = pg.admin(pg.axdb), pg.admin(pg.orchestrator)
        axdb = DatabaseSpec("AXDB", pg.connection_string(pg.axdb), pg.password, login_timeout=5, query_timeout=10)
        orch = DatabaseSpec(
            "OrchestratorData", pg.connection_string(pg.orchestrator), pg.password, login_timeout=5, query_timeout=10
        )
    else:
        ax_path, orch_path = tmp_path / "AXDB.sqlite", tmp_path / "OrchestratorData.sqlite"
        create_sqlite(ax_path, axdb_ddl("sqlite"))
        create_sqlite(orch_path, orchestrator_ddl("sqlite"))
        ax_conn, orch_conn = open_sqlite(ax_path), open_sqlite(orch_path)
        axdb = DatabaseSpec("AXDB", f"sqlite:{ax_path}", query_timeout=10)
        orch = DatabaseSpec("OrchestratorData", f"sqlite:{orch_path}", query_timeout=10)
    writer = AxdbWriter(ax_conn, request.param)
    writer.partition()
    try:
        yield Databases(request.param, axdb, orch, writer, orch_conn)
    finally:
        ax_conn.close()
        orch_conn.close()
