"""The `sql` source: AXDB (re-encryption switches, batch job, backups, progress probes) and OrchestratorData."""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from collectors.base import Collector, Deadline
from collectors.errors import CertmonError, CollectorError, Reason
from collectors.model import MetricSpec, Observation, Problem
from collectors.sql import queries as q
from collectors.sql.axdb import (
    AxdbFacts,
    ProbeResult,
    optional_reads,
    read_config_values,
    read_flight,
    read_job,
    read_probe,
    read_runs,
)
from collectors.sql.backups import REPLICA_METRICS, newest, read_replica_backups
from collectors.sql.connection import Database, DatabaseSpec, connect
from collectors.sql.orchestrator import OrchestratorFacts, read_config_json_locations
from collectors.sql.progress import MemoryProgressHistory, ProgressHistory, RatePolicy, estimate

SOURCE = "sql"
AXDB, ORCHESTRATOR = "AXDB", "OrchestratorData"
Samples = list[tuple[tuple[str, ...], float]]
Clock = Callable[[], datetime]


def _utc_now() -> datetime:
    return datetime.now(UTC)


@dataclass(frozen=True, slots=True)
class Probe:
    """An operator's progress probe: SQL returning one row with `remaining` and optionally `total`."""

    name: str
    sql: str

    def history_key(self, database: str) -> str:
        """Where its samples are kept: an edited probe starts a new history instead of skewing the pace."""
        digest = hashlib.sha256(" ".join(self.sql.split()).encode()).hexdigest()[:12]
        return f"{database}/{self.name}/{digest}"


@dataclass(frozen=True)
class AxdbOptions:
    """What to read from AXDB besides the fixed switches."""

    job_caption: str = q.JOB_CAPTION
    probes: tuple[Probe, ...] = ()
    #: database_name in msdb.dbo.backupset ('' = the connection's database)
    backup_database: str = ""
    #: availability-group replicas whose own msdb is read for AXDB's backups (collectors/sql/backups.py)
    backup_replicas: tuple[DatabaseSpec, ...] = ()
    policy: RatePolicy = field(default_factory=RatePolicy)


def _axdb(facts: Any) -> AxdbFacts | None:
    return facts if isinstance(facts, AxdbFacts) else None


def _flag(read: Callable[[AxdbFacts], bool]) -> Callable[[Any, str], Samples]:
    def samples(facts: Any, target: str) -> Samples:
        axdb = _axdb(facts)
        return [] if axdb is None else [((), 1.0 if read(axdb) else 0.0)]

    return samples


def _job_status(facts: Any, target: str) -> Samples:
    axdb = _axdb(facts)
    if axdb is None:
        return []
    return [((axdb.job.status_name if axdb.job is not None else "absent",), 1.0)]


def _per_probe(value: Callable[[Any], float | None]) -> Callable[[Any, str], Samples]:
    def samples(facts: Any, target: str) -> Samples:
        axdb = _axdb(facts)
        out: Samples = []
        for item in axdb.estimates() if axdb is not None else ():
            number = value(item)
            if number is not None:
                out.append(((item.probe,), number))
        return out

    return samples


def _timestamp(read: Callable[[AxdbFacts], datetime | None]) -> Callable[[Any, str], Samples]:
    def samples(facts: Any, target: str) -> Samples:
        axdb = _axdb(facts)
        moment = read(axdb) if axdb is not None else None
        return [] if moment is None else [((), moment.timestamp())]

    return samples


def _runs(facts: Any, target: str) -> Samples:
    axdb = _axdb(facts)
    if axdb is None:
        return []
    runs = axdb.runs
    return [(("all",), float(runs.total)), (("ended",), float(runs.ended)), (("error",), float(runs.errors))]


SQL_METRICS = (
    MetricSpec(
        "certmon_reencryption_flight_enabled",
        "1 when every SYSFLIGHTING row of EnableEncryptedDataCrawlerRotationTask has ENABLED = 1 (any service id).",
        (),
        _flag(lambda f: f.flight_enabled),
    ),
    MetricSpec(
        "certmon_reencryption_config_enabled",
        "1 when SECURITYCONFIG sets EnableEncryptedDataRotation to True.",
        (),
        _flag(lambda f: f.config_enabled),
    ),
    MetricSpec(
        "certmon_reencryption_job_status_info",
        "1 for the status of the Encrypted data rotation system job (absent: the AOS has not created it).",
        ("status",),
        _job_status,
    ),
    MetricSpec(
        "certmon_reencryption_job_runs",
        "Runs of the re-encryption batch job in BATCHJOBHISTORY, by result (all, ended, error).",
        ("result",),
        _runs,
    ),
    MetricSpec(
        "certmon_reencryption_last_run_end_timestamp_seconds",
        "When the newest run of the re-encryption batch job ended, Unix time.",
        (),
        _timestamp(lambda f: f.runs.last_end),
    ),
    MetricSpec(
        "certmon_reencryption_remaining",
        "What a progress probe counts as still encrypted with the old data encryption certificate.",
        ("probe",),
        _per_probe(lambda e: e.remaining),
    ),
    MetricSpec(
        "certmon_reencryption_progress_ratio",
        "Share of a probe's total already re-encrypted (probes that report a total).",
        ("probe",),
        _per_probe(lambda e: e.ratio),
    ),
    MetricSpec(
        "certmon_reencryption_rate_per_second",
        "Re-encryption pace in rows per second, averaged over the rate window (at least a day of history).",
        ("probe",),
        _per_probe(lambda e: None if e.rate_per_hour is None else e.rate_per_hour / 3600),
    ),
    MetricSpec(
        "certmon_reencryption_eta_timestamp_seconds",
        "When a probe's remaining count reaches zero at the measured pace, Unix time.",
        ("probe",),
        _per_probe(lambda e: e.eta.timestamp() if e.eta is not None else None),
    ),
    MetricSpec(
        "certmon_axdb_last_full_backup_timestamp_seconds",
        "When the newest full backup of AXDB finished (msdb.dbo.backupset type D), Unix time.",
        (),
        _timestamp(lambda f: f.last_full_backup),
    ),
)


class SqlCollector(Collector):
    """AXDB and OrchestratorData over pyodbc (or SQLite for the demo); one connection per collection."""

    name = SOURCE
    metrics = (*SQL_METRICS, *REPLICA_METRICS)

    def __init__(
        self,
        axdb: DatabaseSpec | None = None,
        orchestrator: DatabaseSpec | None = None,
        *,
        environment_id: str = "",
        options: AxdbOptions | None = None,
        history: ProgressHistory | None = None,
        clock: Clock = _utc_now,
        connector: Callable[[DatabaseSpec, Deadline], Database] = connect,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.databases = {spec.name: spec for spec in (axdb, orchestrator) if spec is not None}
        self.axdb_name = axdb.name if axdb is not None else ""
        self.environment_id = environment_id
        self.options = options or AxdbOptions()
        self.history: ProgressHistory = history or MemoryProgressHistory()
        self.clock = clock
        self._connector = connector

    def use_progress_history(self, history: ProgressHistory, clock: Clock | None = None) -> None:
        """Keep progress samples in the daemon's state store (and take the daemon's clock)."""
        self.history = history
        if clock is not None:
            self.clock = clock

    def targets(self) -> Sequence[str]:
        """The configured databases."""
        return tuple(self.databases)

    def collect(self, target: str, deadline: Deadline) -> Observation:
        """Read one database."""
        spec = self.databases.get(target)
        if spec is None:
            raise CollectorError(target, Reason.CONFIG_ERROR, "not a configured database")
        with self._connector(spec, deadline) as db:
            if target == self.axdb_name:
                return self._collect_axdb(db, spec, deadline)
            locations = read_config_json_locations(db, self.environment_id)
            return Observation(facts=OrchestratorFacts(self.environment_id, locations))

    def _collect_axdb(self, db: Database, spec: DatabaseSpec, deadline: Deadline) -> Observation:
        problems: list[Problem] = []
        flight = read_flight(db)
        config_values = read_config_values(db)
        job = read_job(db, self.options.job_caption)
        runs = read_runs(db, self.options.job_caption)
        backup_name = self.options.backup_database or spec.database_name
        backup, backup_error = optional_reads(problems, db, backup_name)
        replicas = read_replica_backups(self.options.backup_replicas, backup_name, self._connector, deadline, problems)
        backup = newest(backup, replicas)
        now = self.clock()
        probes = tuple(self._probes(db, spec, now, problems, deadline))
        facts = AxdbFacts(
            database=spec.database_name,
            flight=flight,
            config_values=config_values,
            job=job,
            runs=runs,
            last_full_backup=backup,
            backup_error=backup_error,
            probes=probes,
            collected_at=now,
            replica_backups=replicas,
        )
        return Observation(facts=facts, problems=tuple(problems))

    def _probes(
        self, db: Database, spec: DatabaseSpec, now: datetime, problems: list[Problem], deadline: Deadline
    ) -> Iterable[ProbeResult]:
        policy = self.options.policy
        for probe in self.options.probes:
            deadline.check(spec.label)
            try:
                remaining, total = read_probe(db, probe.name, probe.sql)
            except CollectorError as err:
                if err.reason is Reason.TIMEOUT:
                    raise
                problems.append(Problem(err.reason, str(err)))
                yield ProbeResult(probe.name, None, f"{err.reason}: {err.message}")
                continue
            key = probe.history_key(spec.name)
            since = now - max(policy.rate_window, policy.stall_after)
            try:
                self.history.add_progress(key, now, remaining, total)
                history = self.history.progress(key, since)
            except CertmonError as err:
                # The measurement stands; only the pace is unknown until the store works again.
                problems.append(Problem(Reason.INTERNAL_ERROR, f"progress history of probe {probe.name}: {err}"))
                history = []
            yield ProbeResult(probe.name, estimate(probe.name, history, (remaining, total), now, policy))
