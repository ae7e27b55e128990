"""AXDB backups taken on an Always On secondary: read from each listed replica's own msdb (item 8)."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

from collectors.base import Deadline
from collectors.errors import Reason
from collectors.model import Observation
from collectors.sql import AxdbOptions, DatabaseSpec, SqlCollector
from collectors.sql.axdb import AxdbFacts
from collectors.sql.backups import REPLICA_METRICS
from simulator.axdb import AxdbWriter, axdb_ddl, create_sqlite, open_sqlite
from tests.collectors.sql.conftest import Databases

NOW = datetime(2026, 11, 27, 12, 0, tzinfo=UTC)


def _replica(tmp_path: Path, name: str, database: str, finish_local: datetime | None) -> DatabaseSpec:
    """A second SQL Server instance's msdb, as a database of its own with a backupset table."""
    path = tmp_path / f"{name}.sqlite"
    create_sqlite(path, axdb_ddl("sqlite"))
    connection = open_sqlite(path)
    try:
        if finish_local is not None:
            AxdbWriter(connection, "sqlite").backup(database, "D", finish_local, 0)
    finally:
        connection.close()
    return DatabaseSpec(name, f"sqlite:{path}", query_timeout=10)


def _collect(databases: Databases, replicas: tuple[DatabaseSpec, ...]) -> Observation:
    options = AxdbOptions(backup_replicas=replicas)
    return SqlCollector(databases.axdb, clock=lambda: NOW, options=options).collect("AXDB", Deadline.after(20))


def test_regression_a_backup_on_a_secondary_is_seen(databases: Databases, tmp_path: Path) -> None:
    name = databases.axdb.database_name
    # The primary's msdb knows an old backup; the secondary, where backups run, a newer one.
    databases.ax.backup(name, "D", datetime(2026, 11, 20, 1, 0), 0)
    secondary = _replica(tmp_path, "SQL2", name, datetime(2026, 11, 26, 23, 0))
    other = _replica(tmp_path, "SQL3", name, None)
    observation = _collect(databases, (secondary, other))
    facts = observation.facts
    assert isinstance(facts, AxdbFacts)
    assert facts.last_full_backup == datetime(2026, 11, 26, 23, 0, tzinfo=UTC)
    assert [(r.replica, r.finished) for r in facts.replica_backups] == [
        ("SQL2", datetime(2026, 11, 26, 23, 0, tzinfo=UTC)),
        ("SQL3", None),
    ]
    assert dict(REPLICA_METRICS[0].samples(facts, "AXDB")) == {
        ("SQL2",): datetime(2026, 11, 26, 23, 0, tzinfo=UTC).timestamp()
    }
    assert observation.problems == ()


def test_an_unreachable_replica_is_a_problem_and_the_others_still_count(databases: Databases, tmp_path: Path) -> None:
    name = databases.axdb.database_name
    secondary = _replica(tmp_path, "SQL2", name, datetime(2026, 11, 26, 23, 0))
    gone = DatabaseSpec("SQL3", f"sqlite:{tmp_path / 'missing' / 'msdb.sqlite'}", query_timeout=5)
    observation = _collect(databases, (gone, secondary))
    facts = observation.facts
    assert isinstance(facts, AxdbFacts)
    assert facts.last_full_backup == datetime(2026, 11, 26, 23, 0, tzinfo=UTC)
    (problem,) = observation.problems
    assert "backup history of replica SQL3 not readable" in problem.message
    assert problem.reason in (Reason.NOT_FOUND, Reason.CONFIG_ERROR, Reason.CONNECTION_REFUSED, Reason.UNREACHABLE)
    assert facts.replica_backups[0].error
