"""enable-reencryption on PostgreSQL through pyodbc: dry run, apply, idempotence, refusals, and a kill midway."""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import time
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest

from collectors.base import Deadline
from collectors.sql import connect
from collectors.sql.queries import CONFIG_KEY, FLIGHT_NAME
from daemon.app import Daemon
from daemon.remediation import remediation_context, remediation_engine
from daemon.settings import load_settings
from daemon.state import StateStore
from remediations.outcome import Outcome
from remediations.plan import SqlChange
from remediations.reencryption import RESTORE_FLIGHT, UPDATE_FLIGHT, EnableReencryption, _undo, axdb_spec
from simulator.axdb import INITIAL_PARTITION
from simulator.lab import Lab
from simulator.postgres import PgEnvironment
from tests.axdbkit import OTHER_PARTITION, read_axdb_on_postgres, seed_reencryption_off

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def pg_lab(lab_copy: Lab, pg: PgEnvironment) -> Iterator[Lab]:
    """The lab's templates (a data encryption rotation) with AXDB on PostgreSQL, key present and off."""
    seed_reencryption_off(pg)
    read_axdb_on_postgres(lab_copy, pg)
    yield lab_copy


def rows(pg: PgEnvironment) -> tuple[list[tuple[Any, ...]], list[tuple[Any, ...]]]:
    """(FLIGHTSERVICEID, ENABLED, PARTITION) of the flight, and the key's values."""
    connection = pg.admin(pg.axdb)
    try:
        cursor = connection.cursor()
        cursor.execute(
            "SELECT FLIGHTSERVICEID, ENABLED, PARTITION FROM SYSFLIGHTING WHERE FLIGHTNAME = ? ORDER BY PARTITION",
            (FLIGHT_NAME,),
        )
        flight = [tuple(r) for r in cursor.fetchall()]
        cursor.execute("SELECT VALUE FROM SECURITYCONFIG WHERE KEY_ = ?", (CONFIG_KEY,))
        return flight, [tuple(r) for r in cursor.fetchall()]
    finally:
        connection.close()


def admin_sql(pg: PgEnvironment, *statements: str) -> None:
    pg.server.execute(pg.axdb, *statements)


@pytest.fixture
def daemon(pg_lab: Lab, now: datetime) -> Iterator[Daemon]:
    instance = Daemon(load_settings(pg_lab.config_file), clock=lambda: now)
    instance.collect_once()
    yield instance
    instance.stop()


BEFORE = ([(0, 1, OTHER_PARTITION)], [("False",)])


def test_dry_run_shows_the_sql_and_the_rows_and_changes_nothing(daemon: Daemon, pg: PgEnvironment) -> None:
    result = remediation_engine(daemon, 0.2, "tester").dry_run(EnableReencryption(), remediation_context(daemon))
    assert result.outcome is Outcome.PLANNED, result.message
    assert [c.ok for c in result.checks] == [True] * 4
    assert [f.rule for f in result.findings_before] == ["reencryption-not-enabled"]
    assert result.plan is not None
    (change,) = result.plan.changes
    assert isinstance(change, SqlChange)
    assert [s.sql.split(" (")[0].split(" SET")[0] for s in change.statements] == [
        "INSERT INTO SYSFLIGHTING",
        "UPDATE SECURITYCONFIG",
    ]
    assert change.statements[1].parameters == ("True", CONFIG_KEY)
    assert [dict(r) for r in change.rows] == [
        {
            "table": "SYSFLIGHTING",
            "FLIGHTNAME": FLIGHT_NAME,
            "FLIGHTSERVICEID": 0,
            "PARTITION": INITIAL_PARTITION,
            "ENABLED": "(no row: inserted)",
        },
        {"table": "SECURITYCONFIG", "KEY_": CONFIG_KEY, "VALUE": "False"},
    ]
    text = result.plan.render()
    assert "(one transaction)" in text and "-- parameters ['True', 'EnableEncryptedDataRotation']" in text
    assert rows(pg) == BEFORE


def test_apply_in_one_transaction_then_nothing_to_do(daemon: Daemon, pg: PgEnvironment) -> None:
    engine = remediation_engine(daemon, 0.2, "tester")
    result = engine.apply(EnableReencryption(), remediation_context(daemon))
    assert result.outcome is Outcome.APPLIED, result.message
    assert result.cleared is True and "re-collected sql: the findings cleared" in result.message
    assert rows(pg) == ([(0, 1, INITIAL_PARTITION), (0, 1, OTHER_PARTITION)], [("True",)])
    again = engine.apply(EnableReencryption(), remediation_context(daemon))
    assert again.outcome is Outcome.NOTHING_TO_DO
    assert again.message == "nothing to change: the flight and the config key are already enabled"
    outcomes = [(e["mode"], e["outcome"]) for e in reversed(daemon.store.audit_entries())]
    assert outcomes == [("apply", "started"), ("apply", "applied"), ("apply", "nothing-to-do")]


def test_update_when_present_insert_when_absent(pg_lab: Lab, pg: PgEnvironment, now: datetime) -> None:
    admin_sql(
        pg,
        "DELETE FROM SECURITYCONFIG",
        f"INSERT INTO SYSFLIGHTING (FLIGHTNAME, ENABLED, FLIGHTSERVICEID, PARTITION) VALUES ('{FLIGHT_NAME}', 0, 0, {INITIAL_PARTITION})",
    )
    daemon = Daemon(load_settings(pg_lab.config_file), clock=lambda: now)
    try:
        daemon.collect_once()
        plan = EnableReencryption().plan(remediation_context(daemon))
        (change,) = plan.changes
        assert isinstance(change, SqlChange)
        assert [s.sql.split(" ")[0] for s in change.statements] == ["UPDATE", "INSERT"]
        result = remediation_engine(daemon, 0.2).apply(EnableReencryption(), remediation_context(daemon))
    finally:
        daemon.stop()
    assert result.outcome is Outcome.APPLIED, result.message
    assert rows(pg) == ([(0, 1, INITIAL_PARTITION), (0, 1, OTHER_PARTITION)], [("True",)])


def test_refused_without_a_data_encryption_rotation(pg_lab: Lab, now: datetime, pg: PgEnvironment) -> None:
    # The new template names the old data encryption certificate again: nothing is being rotated.
    new = (pg_lab.infrastructure / "ConfigTemplate.xml").read_text(encoding="utf-8")
    old_tp, new_tp = pg_lab.cert("DataEncryption", "old").thumbprint, pg_lab.cert("DataEncryption", "new").thumbprint
    (pg_lab.infrastructure / "ConfigTemplate.xml").write_text(new.replace(new_tp, old_tp), encoding="utf-8")
    daemon = Daemon(load_settings(pg_lab.config_file), clock=lambda: now)
    try:
        daemon.collect_once()
        result = remediation_engine(daemon, 0.2).apply(EnableReencryption(), remediation_context(daemon))
    finally:
        daemon.stop()
    assert result.outcome is Outcome.REFUSED
    assert "precondition failed: data encryption certificate rotated" in result.message
    assert rows(pg) == BEFORE


def test_refused_when_axdb_cannot_be_read(pg_lab: Lab, now: datetime, pg: PgEnvironment) -> None:
    (pg_lab.root / "secrets" / "sql-password.txt").write_text("not-the-password\n", encoding="utf-8")
    daemon = Daemon(load_settings(pg_lab.config_file), clock=lambda: now)
    try:
        daemon.collect_once()
        result = remediation_engine(daemon, 0.2).apply(EnableReencryption(), remediation_context(daemon))
    finally:
        daemon.stop()
    assert result.outcome is Outcome.REFUSED
    assert "precondition failed: AXDB collected: auth_failed" in result.message
    assert "not-the-password" not in result.message


def test_a_failed_verification_undoes_the_commit(daemon: Daemon, pg: PgEnvironment) -> None:
    # Something rewrites the value on its way in (a trigger here): the commit succeeds, the check does not.
    admin_sql(
        pg,
        "CREATE FUNCTION certmon_maybe() RETURNS trigger AS $$ BEGIN NEW.value := 'Maybe'; RETURN NEW; END $$"
        " LANGUAGE plpgsql",
        "CREATE TRIGGER certmon_maybe BEFORE UPDATE ON securityconfig FOR EACH ROW EXECUTE FUNCTION certmon_maybe()",
    )
    result = remediation_engine(daemon, 0.2).apply(EnableReencryption(), remediation_context(daemon))
    assert result.outcome is Outcome.FAILED
    assert "the config key does not read as True after the commit" in result.message
    assert result.rollback == (
        f"restore the SYSFLIGHTING and SECURITYCONFIG rows of {daemon.collectors['sql'].databases['AXDB'].label}: restored",
    )  # type: ignore[attr-defined]
    # The inserted flight row is gone again; the key keeps what the trigger made of it.
    assert rows(pg) == ([(0, 1, OTHER_PARTITION)], [("Maybe",)])


def _cli(lab: Lab) -> subprocess.Popen[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("CERTMON_")}
    env["PYTHONPATH"] = str(ROOT)
    return subprocess.Popen(
        [sys.executable, "-m", "daemon", "-c", str(lab.config_file), "remediate", "enable-reencryption", "--apply"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
        cwd=ROOT,
    )


def _wait_blocked_midway(pg: PgEnvironment, process: subprocess.Popen[str]) -> None:
    """Until the apply's UPDATE of SECURITYCONFIG waits for the lock, after its INSERT into SYSFLIGHTING."""
    connection = pg.admin(pg.axdb)
    try:
        cursor = connection.cursor()
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            assert process.poll() is None, process.communicate()
            cursor.execute(
                "SELECT pid FROM pg_stat_activity WHERE usename = ? AND wait_event_type = 'Lock'"
                " AND query LIKE 'UPDATE SECURITYCONFIG%'",
                (pg.user,),
            )
            found = cursor.fetchall()
            if found:
                cursor.execute(
                    "SELECT COUNT(*) FROM pg_locks AS l JOIN pg_class AS c ON c.oid = l.relation"
                    " WHERE l.pid = ? AND c.relname = 'sysflighting' AND l.mode = 'RowExclusiveLock' AND l.granted",
                    (found[0][0],),
                )
                assert cursor.fetchone()[0] == 1  # the INSERT ran in the same transaction
                return
            time.sleep(0.05)  # polling the server for the remote process's progress, not waiting out time
        raise AssertionError("the apply never reached the UPDATE")
    finally:
        connection.close()


@pytest.fixture
def locked(pg: PgEnvironment) -> Iterator[Any]:
    """SECURITYCONFIG locked against writers (readers still pass) by another session."""
    connection = pg.admin(pg.axdb)
    connection.autocommit = False
    cursor = connection.cursor()
    cursor.execute("LOCK TABLE securityconfig IN EXCLUSIVE MODE")
    yield connection
    connection.rollback()
    connection.close()


def test_killed_midway_leaves_no_half_state(pg_lab: Lab, pg: PgEnvironment, locked: Any) -> None:
    process = _cli(pg_lab)
    try:
        _wait_blocked_midway(pg, process)
        process.send_signal(signal.SIGKILL)
        process.wait(timeout=30)
    finally:
        if process.poll() is None:
            process.kill()
    locked.rollback()
    # The server aborted the open transaction with the connection: not even the INSERT stayed.
    assert rows(pg) == BEFORE
    # The next run records the killed one in the audit, then applies.
    again = _cli(pg_lab)
    out, err = again.communicate(timeout=120)
    assert again.returncode == 0, out + err
    assert "note: an earlier run" in out and "RESULT: applied" in out
    assert rows(pg) == ([(0, 1, INITIAL_PARTITION), (0, 1, OTHER_PARTITION)], [("True",)])
    store = StateStore(pg_lab.data_dir)
    try:
        outcomes = [e["outcome"] for e in reversed(store.audit_entries())]
    finally:
        store.close()
    assert outcomes == ["started", "interrupted", "started", "applied"]


def test_sigterm_midway_rolls_back(pg_lab: Lab, pg: PgEnvironment, locked: Any) -> None:
    process = _cli(pg_lab)
    try:
        _wait_blocked_midway(pg, process)
        process.send_signal(signal.SIGTERM)
        locked.rollback()  # the UPDATE proceeds; the signal is handled as soon as it returns
        out, err = process.communicate(timeout=60)
    finally:
        if process.poll() is None:
            process.kill()
    assert process.returncode == 128 + signal.SIGTERM, out + err
    assert "RESULT: rolled-back: interrupted by SIGTERM; every change was rolled back" in out
    assert rows(pg) == BEFORE


def test_on_the_demos_sqlite_database(lab_copy: Lab, now: datetime) -> None:
    settings = load_settings(lab_copy.config_file)
    settings.sources.certfolder.enabled = False
    daemon = Daemon(settings, clock=lambda: now)
    try:
        daemon.collect_once()
        result = remediation_engine(daemon, 0.2).apply(EnableReencryption(), remediation_context(daemon))
    finally:
        daemon.stop()
    assert result.outcome is Outcome.APPLIED and result.cleared, result.message


OTHER_SERVICE = 12719367


def test_regression_a_row_of_another_flight_service_is_updated_not_duplicated(
    pg_lab: Lab, pg: PgEnvironment, now: datetime
) -> None:
    # The runbook: UPDATE every row with the flight name whatever its FLIGHTSERVICEID; INSERT
    # (FLIGHTSERVICEID 0) only when none exists. A second row for service 0 must not appear.
    admin_sql(
        pg,
        "INSERT INTO SYSFLIGHTING (FLIGHTNAME, ENABLED, FLIGHTSERVICEID, PARTITION)"
        f" VALUES ('{FLIGHT_NAME}', 0, {OTHER_SERVICE}, {INITIAL_PARTITION})",
    )
    daemon = Daemon(load_settings(pg_lab.config_file), clock=lambda: now)
    try:
        daemon.collect_once()
        plan = EnableReencryption().plan(remediation_context(daemon))
        (change,) = plan.changes
        assert isinstance(change, SqlChange)
        assert change.statements[0].sql.startswith("UPDATE SYSFLIGHTING")
        assert dict(change.rows[0])["FLIGHTSERVICEID"] == OTHER_SERVICE
        result = remediation_engine(daemon, 0.2).apply(EnableReencryption(), remediation_context(daemon))
        assert result.outcome is Outcome.APPLIED and result.cleared, result.message
        again = remediation_engine(daemon, 0.2).apply(EnableReencryption(), remediation_context(daemon))
        assert again.outcome is Outcome.NOTHING_TO_DO
    finally:
        daemon.stop()
    assert rows(pg) == ([(OTHER_SERVICE, 1, INITIAL_PARTITION), (0, 1, OTHER_PARTITION)], [("True",)])


def test_regression_the_undo_turns_off_only_the_rows_it_turned_on(
    pg_lab: Lab, pg: PgEnvironment, now: datetime
) -> None:
    admin_sql(
        pg,
        "INSERT INTO SYSFLIGHTING (FLIGHTNAME, ENABLED, FLIGHTSERVICEID, PARTITION)"
        f" VALUES ('{FLIGHT_NAME}', 1, 0, {INITIAL_PARTITION}), ('{FLIGHT_NAME}', 0, {OTHER_SERVICE}, {INITIAL_PARTITION})",
    )
    daemon = Daemon(load_settings(pg_lab.config_file), clock=lambda: now)
    try:
        daemon.collect_once()
        context = remediation_context(daemon)
        spec = axdb_spec(context)
        with connect(spec, Deadline.after(10), read_only=False, autocommit=False) as db:
            undo = _undo(db, [UPDATE_FLIGHT])
    finally:
        daemon.stop()
    assert undo == [(RESTORE_FLIGHT, (0, FLIGHT_NAME, OTHER_SERVICE, INITIAL_PARTITION, 1))]


def test_regression_sqlite_row_of_another_flight_service(lab_copy: Lab, now: datetime) -> None:
    settings = load_settings(lab_copy.config_file)
    settings.sources.certfolder.enabled = False
    path = lab_copy.axdb_file
    connection = sqlite3.connect(path)
    try:
        connection.execute("DELETE FROM SYSFLIGHTING WHERE FLIGHTNAME = ?", (FLIGHT_NAME,))
        connection.execute(
            "INSERT INTO SYSFLIGHTING (FLIGHTNAME, ENABLED, FLIGHTSERVICEID, PARTITION) VALUES (?, 0, ?, ?)",
            (FLIGHT_NAME, OTHER_SERVICE, INITIAL_PARTITION),
        )
        connection.commit()
    finally:
        connection.close()
    daemon = Daemon(settings, clock=lambda: now)
    try:
        daemon.collect_once()
        result = remediation_engine(daemon, 0.2).apply(EnableReencryption(), remediation_context(daemon))
    finally:
        daemon.stop()
    assert result.outcome is Outcome.APPLIED and result.cleared, result.message
    connection = sqlite3.connect(path)
    try:
        found = connection.execute(
            "SELECT FLIGHTSERVICEID, ENABLED FROM SYSFLIGHTING WHERE FLIGHTNAME = ?", (FLIGHT_NAME,)
        ).fetchall()
    finally:
        connection.close()
    assert found == [(OTHER_SERVICE, 1)]
