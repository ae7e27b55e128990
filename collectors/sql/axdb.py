"""What AXDB says about data re-encryption: the flight, the config key, the batch job and its runs, backups, probes."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from collectors.errors import CollectorError, Reason
from collectors.model import Problem
from collectors.sql import queries as q
from collectors.sql.connection import Database
from collectors.sql.progress import ProgressEstimate
from collectors.sql.values import as_int, as_number, as_server_local, as_text, as_utc


@dataclass(frozen=True, slots=True)
class FlightRow:
    """One SYSFLIGHTING row of the re-encryption flight in the initial partition."""

    enabled: bool
    service_id: int


@dataclass(frozen=True, slots=True)
class BatchJob:
    """The re-encryption batch job (the newest BATCHJOB row with its caption)."""

    recid: int
    status: int
    start: datetime | None
    end: datetime | None
    original_start: datetime | None
    #: a recurrence is set (RECURRENCEDATA is a binary X++ container; its pattern is not decoded)
    recurring: bool
    company: str

    @property
    def status_name(self) -> str:
        """Hold, Waiting, Executing, Error, Ended, ..."""
        return q.JOB_STATUS.get(self.status, f"Unknown({self.status})")

    @property
    def next_run(self) -> datetime | None:
        """When a waiting job starts next (its STARTDATETIME)."""
        return self.start if self.status_name in ("Waiting", "Scheduled") else None


@dataclass(frozen=True, slots=True)
class JobRuns:
    """BATCHJOBHISTORY of the job: the fallback signal when no probe measures progress."""

    total: int = 0
    ended: int = 0
    errors: int = 0
    last_status: int | None = None
    last_start: datetime | None = None
    last_end: datetime | None = None
    #: end of the newest run that ended without error
    last_ended_at: datetime | None = None

    @property
    def last_status_name(self) -> str:
        """Status of the newest run, or ''."""
        return "" if self.last_status is None else q.JOB_STATUS.get(self.last_status, f"Unknown({self.last_status})")


@dataclass(frozen=True, slots=True)
class ProbeResult:
    """One configured progress probe: its estimate, or why it could not be read."""

    name: str
    estimate: ProgressEstimate | None
    error: str = ""


@dataclass(frozen=True)
class AxdbFacts:
    """Everything certmon reads from the business database."""

    database: str
    flight: tuple[FlightRow, ...]
    config_values: tuple[str, ...]
    job: BatchJob | None
    runs: JobRuns
    last_full_backup: datetime | None
    backup_error: str
    probes: tuple[ProbeResult, ...]
    collected_at: datetime
    #: the newest full backup each listed availability-group replica records (collectors/sql/backups.py);
    #: last_full_backup is already the newest across them and the AXDB connection's own msdb
    replica_backups: tuple[Any, ...] = ()

    @property
    def flight_enabled(self) -> bool:
        """SYSFLIGHTING has the flight and every row of it has ENABLED = 1, whatever its FLIGHTSERVICEID.

        That is the state Microsoft's runbook leaves: it updates every row with the flight name and
        inserts one (FLIGHTSERVICEID 0) only when there is none.
        """
        return bool(self.flight) and all(row.enabled for row in self.flight)

    @property
    def config_enabled(self) -> bool:
        """SECURITYCONFIG has EnableEncryptedDataRotation = True."""
        return any(value.strip().lower() == q.CONFIG_ENABLED.lower() for value in self.config_values)

    @property
    def enabled(self) -> bool:
        """Both switches are on (the AOS still needs a restart to notice)."""
        return self.flight_enabled and self.config_enabled

    def estimates(self) -> list[ProgressEstimate]:
        """Estimates of the probes that could be read."""
        return [p.estimate for p in self.probes if p.estimate is not None]


def read_flight(db: Database) -> tuple[FlightRow, ...]:
    """The flight's rows in the initial partition."""
    rows = db.query(q.FLIGHT_ROWS, (q.FLIGHT_NAME, q.PARTITION_KEY))
    return tuple(FlightRow(as_int(enabled) == 1, as_int(service)) for enabled, service in rows)


def read_config_values(db: Database) -> tuple[str, ...]:
    """The VALUE of every SECURITYCONFIG row with the key."""
    return tuple(as_text(value) for (value,) in db.query(q.CONFIG_ROWS, (q.CONFIG_KEY,)))


def read_job(db: Database, caption: str) -> BatchJob | None:
    """The newest batch job with the caption, or None when the AOS has not created it."""
    rows = db.query(q.JOB_ROWS, (caption, q.PARTITION_KEY))
    if not rows:
        return None
    recid, status, start, end, original, recurrence, company = rows[0]
    return BatchJob(
        recid=as_int(recid),
        status=as_int(status),
        start=as_utc(start),
        end=as_utc(end),
        original_start=as_utc(original),
        recurring=bool(recurrence),
        company=as_text(company),
    )


def read_runs(db: Database, caption: str) -> JobRuns:
    """Counts of the job's runs and its newest run."""
    ((total, ended, errors, last_ended_raw),) = db.query(
        q.RUN_SUMMARY, (q.STATUS_ENDED, q.STATUS_ERROR, q.STATUS_ENDED, caption, q.PARTITION_KEY)
    )
    runs = JobRuns(as_int(total), as_int(ended), as_int(errors), last_ended_at=as_utc(last_ended_raw))
    if not runs.total:
        return runs
    # The newest row by ordering, not by comparing dates: SQL Server compares a DATETIME column
    # with a bound DATETIME2 parameter after converting it, and 3.33 ms ticks then never match.
    rows = db.query(q.LAST_RUN, (caption, q.PARTITION_KEY), limit=1)
    if not rows:
        return runs
    status, start, end = rows[0]
    return JobRuns(
        runs.total,
        runs.ended,
        runs.errors,
        last_status=as_int(status),
        last_start=as_utc(start),
        last_end=as_utc(end),
        last_ended_at=runs.last_ended_at,
    )


def read_last_full_backup(db: Database, database_name: str) -> datetime | None:
    """When the newest full backup of the database finished (msdb.dbo.backupset), in UTC."""
    rows = db.query(q.LAST_FULL_BACKUP, (database_name, q.BACKUP_FULL, database_name, q.BACKUP_FULL))
    if not rows:
        return None
    return max((m for m in (as_server_local(finish, zone) for finish, zone in rows) if m is not None), default=None)


def read_probe(db: Database, name: str, sql: str) -> tuple[float, float | None]:
    """Run one probe; it must return one row with a `remaining` column and optionally `total`."""
    names, rows = db.query_named(q.probe_statement(name, sql), limit=2)
    where = f"{db.spec.label} probe {name}"
    if "remaining" not in names:
        shown = ", ".join(names) or "none"
        raise CollectorError(where, Reason.BAD_OUTPUT, f"needs a column named remaining (columns: {shown})")
    if len(rows) != 1:
        count = "no rows" if not rows else "more than one row"
        raise CollectorError(where, Reason.BAD_OUTPUT, f"returned {count}, expected one")
    row = dict(zip(names, rows[0], strict=True))
    try:
        remaining = as_number(row["remaining"]) or 0.0
        total = as_number(row.get("total"))
    except ValueError as err:
        raise CollectorError(where, Reason.BAD_OUTPUT, f"remaining and total must be numbers: {err}") from err
    if remaining < 0 or (total is not None and total < 0):
        raise CollectorError(where, Reason.BAD_OUTPUT, "remaining and total must not be negative")
    return remaining, total


def optional_reads(problems: list[Problem], db: Database, database_name: str) -> tuple[datetime | None, str]:
    """The backup history, which the login may not be allowed to read: a problem, not a failure."""
    try:
        return read_last_full_backup(db, database_name), ""
    except CollectorError as err:
        problems.append(Problem(err.reason, f"backup history not readable: {err.message}"))
        return None, f"{err.reason}: {err.message}"
