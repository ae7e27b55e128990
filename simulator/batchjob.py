"""The "Encrypted data rotation system job" as the AOS batch framework runs it, on the lab's AXDB.

Once re-encryption is enabled and the AOS nodes restarted, the job runs every `period` (a day)
for `run_length` (two hours) and moves `rows_per_run` encrypted values from the old data
encryption certificate to the new one, evenly over each run, leaving BATCHJOB and
BATCHJOBHISTORY rows as the batch framework does. A run whose AOS cannot decrypt with the old
certificate (`blocker` names why) ends in Error and moves nothing. Time is the injected clock:
the demo's simulated time, or a test's manual clock; `tick()` does all the work, `start()` only
calls it from a thread.
"""

from __future__ import annotations

import logging
import sqlite3
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path

from collectors.sql.queries import JOB_CAPTION
from simulator.axdb import AxdbWriter, stamp

log = logging.getLogger("certmon.simulator")

WAITING, EXECUTING, ERROR, ENDED = 1, 2, 3, 4


@dataclass
class _Run:
    """The run in progress: its BATCHJOBHISTORY row, when it started, how many values it moved."""

    recid: int
    started: datetime
    moved: int = 0


class ReencryptionJob:
    """The batch job re-encrypting the lab's encrypted fields from the old certificate to the new one."""

    def __init__(
        self,
        database: Path,
        old: str,
        new: str,
        clock: Callable[[], datetime],
        *,
        rows_per_run: int = 150,
        run_length: timedelta = timedelta(hours=2),
        period: timedelta = timedelta(days=1),
        blocker: Callable[[], str | None] = lambda: None,
    ) -> None:
        self.database = database
        self.old, self.new = old, new
        self.clock = clock
        self.rows_per_run = rows_per_run
        self.run_length = run_length
        self.period = period
        #: why the AOS cannot decrypt with the old certificate right now (None: it can)
        self.blocker = blocker
        self.job_recid: int | None = None
        self.next_start: datetime | None = None
        self.run: _Run | None = None
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    @contextmanager
    def _writer(self) -> Iterator[AxdbWriter]:
        """One transaction on AXDB (the daemon reads the same file)."""
        connection = sqlite3.connect(self.database, isolation_level=None, timeout=30, check_same_thread=False)
        try:
            connection.execute("BEGIN IMMEDIATE")
            writer = AxdbWriter(connection, "sqlite")
            writer.resume_recids()
            try:
                yield writer
            except BaseException:
                connection.execute("ROLLBACK")
                raise
            connection.execute("COMMIT")
        finally:
            connection.close()

    def remaining(self) -> int:
        """Values still encrypted with the old certificate."""
        connection = sqlite3.connect(self.database, timeout=30)
        try:
            row = connection.execute(
                "SELECT COUNT(*) FROM LABENCRYPTEDFIELD WHERE CERTTHUMBPRINT = ?", (self.old,)
            ).fetchone()
        finally:
            connection.close()
        return int(row[0])

    def schedule(self, first_run: datetime | None = None) -> None:
        """The AOS restarted with re-encryption on: the job exists and its first run starts at `first_run`."""
        first = first_run or self.clock()
        with self._lock, self._writer() as writer:
            if self.job_recid is None:
                self.job_recid = writer.job(JOB_CAPTION, WAITING, first)
            self.next_start = first

    def _set_job(self, writer: AxdbWriter, status: int, start: datetime | None = None) -> None:
        if start is None:
            writer.connection.execute("UPDATE BATCHJOB SET STATUS = ? WHERE RECID = ?", (status, self.job_recid))
        else:
            writer.connection.execute(
                "UPDATE BATCHJOB SET STATUS = ?, STARTDATETIME = ? WHERE RECID = ?",
                (status, stamp(start, "sqlite"), self.job_recid),
            )

    def _begin(self, writer: AxdbWriter, at: datetime) -> None:
        assert self.job_recid is not None
        self.run = _Run(writer.run(self.job_recid, JOB_CAPTION, EXECUTING, at, None), at)
        self._set_job(writer, EXECUTING, at)

    def _end(self, writer: AxdbWriter, at: datetime, status: int) -> None:
        run = self.run
        assert run is not None
        writer.connection.execute(
            "UPDATE BATCHJOBHISTORY SET STATUS = ?, ENDDATETIME = ? WHERE RECID = ?",
            (status, stamp(at, "sqlite"), run.recid),
        )
        self._set_job(writer, WAITING)
        self.next_start = run.started + self.period
        self.run = None

    def tick(self) -> None:
        """Bring the job up to the clock: start a due run, move the values due so far, end a run that is over."""
        now = self.clock()
        with self._lock:
            if self.next_start is None:
                return
            with self._writer() as writer:
                if self.run is None:
                    if now < self.next_start:
                        return
                    start = self.next_start
                    # Runs the framework missed (the demo paused) are skipped, as a recurring job's are.
                    while start + self.period <= now:
                        start += self.period
                    self._begin(writer, start)
                self._advance(writer, now)

    def _advance(self, writer: AxdbWriter, now: datetime) -> None:
        run = self.run
        assert run is not None
        end = run.started + self.run_length
        upto = min(now, end)
        problem = self.blocker()
        if problem:
            log.info("re-encryption job run of %s ends in error: %s", run.started, problem)
            self._end(writer, upto, ERROR)
            return
        share = (upto - run.started) / self.run_length
        due = int(self.rows_per_run * share) - run.moved
        if due > 0:
            run.moved += writer.reencrypt(self.old, self.new, due)
        left = writer.connection.execute(
            "SELECT COUNT(*) FROM LABENCRYPTEDFIELD WHERE CERTTHUMBPRINT = ?", (self.old,)
        ).fetchone()[0]
        if now >= end or not left:
            self._end(writer, upto, ENDED)

    def catch_up(self) -> int:
        """Re-encrypt everything left in one run ending now (the demo skipping ahead); returns the values moved."""
        now = self.clock()
        with self._lock, self._writer() as writer:
            if self.job_recid is None:
                self.job_recid = writer.job(JOB_CAPTION, WAITING, now)
            if self.run is None:
                self._begin(writer, now)
            assert self.run is not None
            moved = writer.reencrypt(self.old, self.new, 2**31)
            self.run.moved += moved
            self._end(writer, now, ENDED)
        return moved

    def start(self, every: float = 0.25) -> ReencryptionJob:
        """Tick on a background thread every `every` real seconds."""

        def loop() -> None:
            while not self._stop.wait(every):
                try:
                    self.tick()
                except sqlite3.Error as err:
                    log.warning("re-encryption job simulator: %s", err)

        self._thread = threading.Thread(target=loop, name="sim-reencryption-job", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop ticking."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
