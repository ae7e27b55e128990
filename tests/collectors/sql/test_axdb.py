"""AXDB through the real drivers (psqlODBC on PostgreSQL, and SQLite): switches, batch job, backups, probes."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from collectors.base import Deadline
from collectors.errors import Reason
from collectors.sql import AxdbOptions, DatabaseSpec, Probe, SqlCollector
from collectors.sql.axdb import AxdbFacts
from collectors.sql.orchestrator import OrchestratorFacts
from collectors.sql.queries import CONFIG_KEY, FLIGHT_NAME, JOB_CAPTION
from simulator.axdb import LAB_PROBE_SQL, artifact
from simulator.postgres import USERS_GROUP, PgEnvironment
from tests.axdbkit import axdb_writer
from tests.collectors.sql.conftest import Databases

NOW = datetime(2026, 11, 27, 12, 0, tzinfo=UTC)
OLD, NEW = "A" * 40, "B" * 40


def collect(databases: Databases, **options: object) -> AxdbFacts:
    collector = SqlCollector(databases.axdb, databases.orchestrator, clock=lambda: NOW, options=AxdbOptions(**options))  # type: ignore[arg-type]
    facts = collector.collect("AXDB", Deadline.after(20)).facts
    assert isinstance(facts, AxdbFacts)
    return facts


def test_nothing_set_yet(databases: Databases) -> None:
    facts = collect(databases)
    assert facts.flight == () and facts.config_values == ()
    assert not facts.flight_enabled and not facts.config_enabled and not facts.enabled
    assert facts.job is None and facts.runs.total == 0 and facts.runs.last_status is None
    assert facts.probes == () and facts.last_full_backup is None


@pytest.mark.parametrize(
    ("rows", "enabled"),
    [
        ([(0, 0)], False),
        ([(1, 0)], True),
        # The runbook updates every row with the name whatever its FLIGHTSERVICEID and inserts
        # none then: a row of another service id, enabled, is the state it leaves.
        ([(1, 12719367)], True),
        ([(0, 12719367)], False),
        ([(1, 0), (1, 12719367)], True),
        ([(0, 0), (1, 12719367)], False),
        ([(1, 0), (0, 12719367)], False),
    ],
)
def test_flight_states(databases: Databases, rows: list[tuple[int, int]], enabled: bool) -> None:
    for value, service in rows:
        databases.ax.flight(FLIGHT_NAME, value, service)
    databases.ax.flight("SomeOtherFlight", 1, 0)
    facts = collect(databases)
    assert sorted((r.enabled, r.service_id) for r in facts.flight) == sorted((v == 1, s) for v, s in rows)
    assert facts.flight_enabled is enabled


def test_flight_of_another_partition_is_not_read(databases: Databases) -> None:
    databases.ax.partition("tenant2", 5637144577)
    databases.ax.flight(FLIGHT_NAME, 1, 0, partition=5637144577)
    facts = collect(databases)
    assert facts.flight == () and not facts.flight_enabled


@pytest.mark.parametrize(("value", "enabled"), [("False", False), ("True", True), (" true ", True), ("", False)])
def test_config_key_states(databases: Databases, value: str, enabled: bool) -> None:
    databases.ax.config(CONFIG_KEY, value)
    databases.ax.config("SomethingElse", "True")
    facts = collect(databases)
    assert facts.config_values == (value,) and facts.config_enabled is enabled


def test_both_switches_make_it_enabled(databases: Databases) -> None:
    databases.ax.flight(FLIGHT_NAME, 1, 0)
    databases.ax.config(CONFIG_KEY, "True")
    assert collect(databases).enabled


@pytest.mark.parametrize(
    ("status", "name"),
    [(0, "Hold"), (1, "Waiting"), (2, "Executing"), (3, "Error"), (4, "Ended"), (5, "Ready"), (6, "NotRun"),
     (7, "Cancelling"), (8, "Canceled"), (9, "Scheduled"), (42, "Unknown(42)")],
)  # fmt: skip
def test_job_status_names(databases: Databases, status: int, name: str) -> None:
    start = datetime(2026, 11, 28, 1, 0, tzinfo=UTC)
    databases.ax.job(JOB_CAPTION, status, start)
    job = collect(databases).job
    assert job is not None
    assert (job.status, job.status_name) == (status, name)
    assert job.start == start and job.end is None  # AX's 1900-01-01 means "no date"
    assert job.recurring
    assert job.next_run == (start if name in ("Waiting", "Scheduled") else None)


def test_newest_job_of_the_caption_in_the_partition(databases: Databases) -> None:
    databases.ax.partition("tenant2", 5637144577)
    databases.ax.job(JOB_CAPTION, 3, NOW - timedelta(days=30), recurring=False)
    newest = databases.ax.job(JOB_CAPTION, 1, NOW + timedelta(hours=13))
    databases.ax.job(JOB_CAPTION, 2, NOW, partition=5637144577)
    databases.ax.job("Some other job", 2, NOW)
    job = collect(databases).job
    assert job is not None and job.recid == newest and job.status_name == "Waiting"


def test_runs_summary_and_last_run(databases: Databases) -> None:
    job = databases.ax.job(JOB_CAPTION, 1, NOW + timedelta(hours=13))
    for day in range(5, 0, -1):
        start = NOW - timedelta(days=day, hours=-1)
        status = 3 if day == 3 else 4
        databases.ax.run(job, JOB_CAPTION, status, start, start + timedelta(hours=2))
    last_start = NOW - timedelta(hours=2)
    databases.ax.run(job, JOB_CAPTION, 2, last_start, None)  # executing right now
    databases.ax.run(job, "Some other job", 3, NOW, NOW)
    runs = collect(databases).runs
    assert (runs.total, runs.ended, runs.errors) == (6, 4, 1)
    assert runs.last_status_name == "Executing" and runs.last_start == last_start and runs.last_end is None
    last_ended_start = NOW - timedelta(days=1, hours=-1)
    assert runs.last_ended_at == last_ended_start + timedelta(hours=2)


def test_last_full_backup_in_utc_from_the_servers_local_time(databases: Databases) -> None:
    name = databases.axdb.database_name
    # 09:30 at UTC+02:00 (time_zone counts quarters of an hour) is 07:30 UTC.
    databases.ax.backup(name, "D", datetime(2026, 11, 26, 9, 30), 8)
    databases.ax.backup(name, "L", datetime(2026, 11, 27, 9, 0), 8)  # a log backup is not a full backup
    databases.ax.backup("OtherDb", "D", datetime(2026, 11, 27, 9, 0), 8)
    databases.ax.backup(name, "D", datetime(2026, 11, 20, 1, 0), 127)  # unknown zone, older anyway
    facts = collect(databases)
    assert facts.last_full_backup == datetime(2026, 11, 26, 7, 30, tzinfo=UTC)
    assert facts.backup_error == ""


def test_probe_reads_remaining_and_total(databases: Databases) -> None:
    databases.ax.encrypted_fields(OLD, 30)
    databases.ax.encrypted_fields(NEW, 70)
    facts = collect(databases, probes=(Probe("fields", LAB_PROBE_SQL.format(old=OLD)),))
    (probe,) = facts.probes
    assert probe.error == "" and probe.estimate is not None
    assert (probe.estimate.remaining, probe.estimate.total) == (30, 100)
    assert probe.estimate.ratio == pytest.approx(0.7)
    assert probe.estimate.samples == 1 and probe.estimate.eta is None  # one sample: no pace yet


@pytest.mark.parametrize(
    ("sql", "reason", "words"),
    [
        ("SELECT COUNT(*) AS rows_left FROM LABENCRYPTEDFIELD", Reason.BAD_OUTPUT, "needs a column named remaining"),
        ("SELECT RECID AS remaining FROM LABENCRYPTEDFIELD", Reason.BAD_OUTPUT, "expected one"),
        ("SELECT 'many' AS remaining", Reason.BAD_OUTPUT, "must be numbers"),
        ("SELECT -1 AS remaining", Reason.BAD_OUTPUT, "must not be negative"),
        ("SELECT COUNT(*) AS remaining FROM NOSUCHTABLE", Reason.NOT_FOUND, "nosuchtable"),
    ],
)
def test_a_bad_probe_is_a_problem_not_a_failure(databases: Databases, sql: str, reason: Reason, words: str) -> None:
    databases.ax.encrypted_fields(OLD, 2)
    good = Probe("good", LAB_PROBE_SQL.format(old=OLD))
    collector = SqlCollector(databases.axdb, clock=lambda: NOW, options=AxdbOptions(probes=(Probe("bad", sql), good)))
    observation = collector.collect("AXDB", Deadline.after(20))
    facts = observation.facts
    assert isinstance(facts, AxdbFacts)
    bad, fine = facts.probes
    assert bad.estimate is None and str(reason) in bad.error and words in bad.error.lower()
    assert fine.estimate is not None and fine.estimate.remaining == 2
    ((problem_reason, message),) = [(p.reason, p.message) for p in observation.problems]
    assert problem_reason is reason and "probe bad" in message


def test_config_json_locations_of_the_environment(databases: Databases) -> None:
    env = "3f1d6c5e-4b6a-4d1f-9d62-2b1fb0d1a001"
    location = "\\\\DC1\\D365FFOStorage\\agent\\wp\\Contoso\\StandaloneSetup-123456\\config.json"
    artifact(databases.orch, env, "config.json", location)
    artifact(databases.orch, env, "config.json", location)
    artifact(databases.orch, env, "topology.xml", "\\\\DC1\\x\\topology.xml")
    artifact(databases.orch, "another-environment", "config.json", "\\\\DC1\\other\\config.json")
    collector = SqlCollector(databases.axdb, databases.orchestrator, environment_id=env)
    assert collector.targets() == ("AXDB", "OrchestratorData")
    facts = collector.collect("OrchestratorData", Deadline.after(20)).facts
    assert facts == OrchestratorFacts(env, (location,))


def test_unreadable_backup_history_is_a_problem_not_a_failure(pg: PgEnvironment) -> None:
    pg.server.execute(pg.axdb, f"REVOKE SELECT ON msdb.backupset FROM {USERS_GROUP}")
    with axdb_writer(pg) as writer:
        writer.partition()
    spec = DatabaseSpec("AXDB", pg.connection_string(pg.axdb), pg.password)
    observation = SqlCollector(spec).collect("AXDB", Deadline.after(20))
    facts = observation.facts
    assert isinstance(facts, AxdbFacts)
    assert facts.last_full_backup is None and facts.backup_error.startswith("permission_denied: permission denied")
    ((problem),) = observation.problems
    assert problem.reason is Reason.PERMISSION_DENIED and "backup history not readable" in problem.message


def test_a_probe_without_rows(databases: Databases) -> None:
    probe = Probe("empty", "SELECT E.RECID AS remaining FROM LABENCRYPTEDFIELD AS E WHERE E.RECID < 0")
    facts = collect(databases, probes=(probe,))
    assert facts.probes[0].error == "bad_output: returned no rows, expected one"
