"""The simulated re-encryption batch job on the lab's AXDB, driven by a manual clock."""

from __future__ import annotations

import sqlite3
from datetime import datetime, timedelta

import pytest

from simulator.batchjob import ENDED, ERROR, EXECUTING, WAITING, ReencryptionJob
from simulator.lab import Lab


class ManualClock:
    """Time that moves only when the test says so."""

    def __init__(self, now: datetime) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now

    def advance(self, delta: timedelta) -> None:
        self.now += delta


@pytest.fixture
def clock(now: datetime) -> ManualClock:
    return ManualClock(now)


def _job(lab: Lab, clock: ManualClock, blocker: list[str | None] | None = None) -> ReencryptionJob:
    old, new = (lab.cert("DataEncryption", g).thumbprint for g in ("old", "new"))
    problem = blocker if blocker is not None else [None]
    job = ReencryptionJob(lab.axdb_file, old, new, clock, rows_per_run=100, blocker=lambda: problem[0])
    job.schedule()
    return job


def _runs(job: ReencryptionJob) -> list[tuple[int, str, str]]:
    connection = sqlite3.connect(job.database)
    try:
        rows = connection.execute(
            "SELECT STATUS, STARTDATETIME, ENDDATETIME FROM BATCHJOBHISTORY WHERE BATCHJOBID = ? ORDER BY RECID",
            (job.job_recid,),
        ).fetchall()
        status = connection.execute("SELECT STATUS FROM BATCHJOB WHERE RECID = ?", (job.job_recid,)).fetchone()
    finally:
        connection.close()
    return [(int(s), str(a), str(b)) for s, a, b in rows] + [(int(status[0]), "job", "")]


def test_a_run_moves_its_share_evenly_over_two_hours(lab_copy: Lab, clock: ManualClock) -> None:
    job = _job(lab_copy, clock)
    before = job.remaining()
    job.tick()
    assert job.run is not None and _runs(job)[-1][0] == EXECUTING
    clock.advance(timedelta(hours=1))
    job.tick()
    assert job.remaining() == before - 50
    clock.advance(timedelta(hours=1, minutes=1))
    job.tick()
    assert job.remaining() == before - 100
    runs = _runs(job)
    assert [r[0] for r in runs] == [ENDED, WAITING]
    assert job.next_start == clock.now - timedelta(hours=2, minutes=1) + timedelta(days=1)


def test_nothing_happens_between_runs(lab_copy: Lab, clock: ManualClock) -> None:
    job = _job(lab_copy, clock)
    clock.advance(timedelta(hours=3))
    job.tick()
    left = job.remaining()
    clock.advance(timedelta(hours=20))
    job.tick()
    assert job.remaining() == left and job.run is None
    clock.advance(timedelta(hours=2))
    job.tick()
    assert job.remaining() == left - 50


def test_a_run_without_the_old_certificate_ends_in_error_and_moves_nothing(lab_copy: Lab, clock: ManualClock) -> None:
    problem: list[str | None] = ["the old DataEncryption certificate is missing on AOS1"]
    job = _job(lab_copy, clock, problem)
    before = job.remaining()
    clock.advance(timedelta(minutes=30))
    job.tick()
    assert job.remaining() == before
    assert [r[0] for r in _runs(job)] == [ERROR, WAITING]
    # Certificate re-imported: the next day's run works again.
    problem[0] = None
    clock.advance(timedelta(days=1))
    job.tick()
    clock.advance(timedelta(hours=2))
    job.tick()
    assert job.remaining() == before - 100
    assert [r[0] for r in _runs(job)] == [ERROR, ENDED, WAITING]


def test_catch_up_finishes_everything_in_one_run(lab_copy: Lab, clock: ManualClock) -> None:
    job = _job(lab_copy, clock)
    before = job.remaining()
    assert before > 0
    assert job.catch_up() == before
    assert job.remaining() == 0
    assert [r[0] for r in _runs(job)] == [ENDED, WAITING]
