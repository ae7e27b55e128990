"""AXDB's full backups on every replica the operator lists: msdb.dbo.backupset is per instance.

In an Always On availability group a backup taken on a secondary replica (the common choice:
automated_backup_preference SECONDARY) is recorded only in that replica's own msdb, which the
availability group does not replicate. The AXDB connection (often the listener, so the primary)
cannot see it. Each configured replica is read directly (its connection string names the instance
and msdb); the newest full backup across them is the AXDB backup time. A replica that cannot be
read is a problem of the collection, never a failure, and does not hide the others.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime

from collectors.base import Deadline
from collectors.errors import CollectorError
from collectors.model import MetricSpec, Problem
from collectors.sql.axdb import read_last_full_backup
from collectors.sql.connection import Database, DatabaseSpec

Connector = Callable[[DatabaseSpec, Deadline], Database]


@dataclass(frozen=True, slots=True)
class ReplicaBackup:
    """The newest full backup of the business database one replica's msdb records, or why it is unknown."""

    replica: str
    finished: datetime | None
    error: str = ""


def read_replica_backups(
    replicas: Sequence[DatabaseSpec],
    database_name: str,
    connector: Connector,
    deadline: Deadline,
    problems: list[Problem],
) -> tuple[ReplicaBackup, ...]:
    """Each replica's newest full backup of `database_name`; failures become problems."""
    found = []
    for spec in replicas:
        deadline.check(spec.label)
        try:
            with connector(spec, deadline) as db:
                found.append(ReplicaBackup(spec.name, read_last_full_backup(db, database_name)))
        except CollectorError as err:
            problems.append(Problem(err.reason, f"backup history of replica {spec.name} not readable: {err.message}"))
            found.append(ReplicaBackup(spec.name, None, f"{err.reason}: {err.message}"))
    return tuple(found)


def newest(own: datetime | None, replicas: Sequence[ReplicaBackup]) -> datetime | None:
    """The newest full backup across the AXDB connection's msdb and every replica's."""
    times = [t for t in (own, *(r.finished for r in replicas)) if t is not None]
    return max(times, default=None)


def _replica_samples(facts: object, target: str) -> list[tuple[tuple[str, ...], float]]:
    replicas: tuple[ReplicaBackup, ...] = getattr(facts, "replica_backups", ())
    return [((r.replica,), r.finished.timestamp()) for r in replicas if r.finished is not None]


REPLICA_METRICS = (
    MetricSpec(
        "certmon_axdb_replica_last_full_backup_timestamp_seconds",
        "Newest full backup of AXDB that one availability-group replica's msdb records (sources.sql.backup_replicas).",
        ("replica",),
        _replica_samples,
    ),
)
