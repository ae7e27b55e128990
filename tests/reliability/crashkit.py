"""The SIGKILL loop shared by the remediation crash tests, and what it checks after every kill.

One loop per remediation: put the world in its "before" state (`Scenario.reset`), fork a child
that collects and waits (`tests.reliability.crashchild`), tell it `go`, SIGKILL it after a
seeded-random delay, then check:

* every target is in the state before or the state after the whole apply (byte-exact for files;
  a scenario may name intermediate states a multi-step apply can be killed in, each one a state
  the next run finishes from);
* a target file that changed has a backup holding its original bytes;
* the environment lock is free (the operating system released the killed holder's lock);
* the audit file holds only whole JSON lines, the state store passes `PRAGMA integrity_check`,
  and the store holds the file's records (the last record of a killed run may be in the file
  only: the file is written first);
* a re-run (a child that is not killed) completes: applied or nothing to do, the findings that
  name the remediation cleared, the targets in the "after" state, no journal or temporary file
  left, and an unfinished run recorded as `interrupted`.

Kill points are steps, not delays (`tests.reliability.killpoints`): the child counts its I/O events
and its calls that write, commit or exchange bytes, and SIGKILLs itself before the drawn step. Two
uninterrupted runs calibrate the count (their median) and where the intent journal lives; half the
kills are drawn uniformly over 1.2 times the whole apply (lock, recovery, plan, journal, backup,
write, remote call, verification, re-collection and audit), half over the steps while the journal
exists (every other one over its first quarter), where the side effects are; the first kill lands
before the journal is written. A busy machine slows the child down but does not move its kills.
"""

from __future__ import annotations

import json
import random
import statistics
from collections import Counter
from collections.abc import Callable, Hashable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from multiprocessing.connection import Connection
from multiprocessing.context import ForkServerContext
from pathlib import Path
from typing import Any

from daemon.state import StateStore
from remediations.audit import AUDIT_FILE
from remediations.lock import EnvironmentLock
from tests.reliability.crashchild import apply_when_told
from tests.reliability.killpoints import Calibration

TERMINAL = {"applied", "failed", "rolled-back", "interrupted", "refused", "nothing-to-do"}
READY_SECONDS = 120.0


@dataclass
class Scenario:
    """One remediation in a lab: how to reset it, how to read its targets' state."""

    remediation: str
    config: Path
    data_dir: Path
    environment: str
    reset: Callable[[], None]
    state: Callable[[], Hashable]
    #: target files: each is backed up when changed and, when `exact`, holds its original or its applied bytes
    files: tuple[Path, ...] = ()
    exact: bool = True
    #: states other than before and after that a kill may leave, by name (a staged file whose upgrade did not start)
    intermediate: Callable[[Hashable], str | None] = lambda _state: None
    #: what an operator does before running again (waits for a started upgrade to finish)
    settle: Callable[[], None] = lambda: None


@dataclass
class Report:
    """What the kills hit."""

    kills: int = 0
    states: Counter[str] = field(default_factory=Counter)
    journal_left: int = 0
    recovered: int = 0
    reruns: Counter[str] = field(default_factory=Counter)
    steps: int = 0
    journal: tuple[int | None, int | None] = (None, None)

    def line(self, name: str) -> str:
        """One summary line for the test output."""
        return (
            f"{name}: {self.kills} kills over {self.steps}-step applies (journal at steps {self.journal}); "
            "after the kill "
            f"{dict(self.states)}; journal left {self.journal_left}; re-runs {dict(self.reruns)}, "
            f"{self.recovered} recorded an interrupted run"
        )


class Child:
    """One forked apply, ready to go."""

    def __init__(self, context: ForkServerContext, scenario: Scenario) -> None:
        self.conn, remote = context.Pipe()
        self.process = context.Process(
            target=apply_when_told, args=(remote, str(scenario.config), scenario.remediation), daemon=True
        )
        self.process.start()
        remote.close()
        if not self.conn.poll(READY_SECONDS):
            self.process.kill()
            raise AssertionError(f"{scenario.remediation}: the child never became ready")
        assert self._recv(self.conn) == "ready"

    @staticmethod
    def _recv(conn: Connection) -> Any:
        try:
            return conn.recv()
        except EOFError as err:
            raise AssertionError("the child died before answering") from err

    def go(self, kill_at: int | None = None) -> None:
        """Start the apply; the child SIGKILLs itself before step `kill_at` (None: never)."""
        self.conn.send(("go", kill_at))

    def result(self) -> tuple[dict[str, Any], Calibration] | None:
        """The apply's result and its steps (waits for it); None when the child killed itself first."""
        if not self.conn.poll(READY_SECONDS):
            self.process.kill()
            raise AssertionError("the apply did not finish")
        try:
            answer = self.conn.recv()
        except EOFError:
            answer = None
        self.process.join(30)
        self.conn.close()
        if answer is None:
            assert self.process.exitcode == -9, f"the child died with {self.process.exitcode}, not by its kill step"
            return None
        result, steps = answer
        assert isinstance(result, dict) and isinstance(steps, Calibration)
        return result, steps


def journal_path(scenario: Scenario) -> Path:
    """The engine's intent journal for the scenario's environment."""
    return scenario.data_dir / "remediations" / f"{scenario.environment}.journal.json"


def temp_leftovers(scenario: Scenario) -> list[Path]:
    """Temporary files of interrupted writes next to the targets or in the data directory, backups aside."""
    folders = {p.parent for p in scenario.files} | {scenario.data_dir}
    found: list[Path] = []
    for folder in folders:
        found += [p for p in folder.rglob("*.certmon-*.tmp") if "backups" not in p.parts]
    return found


def audit_lines(scenario: Scenario) -> list[dict[str, Any]]:
    """Every line of the audit file; each must be a whole JSON record."""
    path = scenario.data_dir / AUDIT_FILE
    if not path.exists():
        return []
    data = path.read_bytes()
    assert not data or data.endswith(b"\n"), f"the audit file ends in a torn line: {data[-200:]!r}"
    records = []
    for number, line in enumerate(data.splitlines(), 1):
        try:
            records.append(json.loads(line))
        except ValueError as err:
            raise AssertionError(f"audit line {number} is not a whole record: {line[:200]!r}") from err
    return records


def check_store(scenario: Scenario, lines: list[dict[str, Any]], allowed: Counter[tuple[str, str]]) -> None:
    """The store is intact and holds the file's records, but for those a killed run was writing when it died.

    Each record goes to the file first and to the store next, so a run killed between the two leaves
    one record in the file only; `allowed` collects those (the caller adds the last line after a kill).
    """
    store = StateStore(scenario.data_dir)
    try:
        assert store.integrity_ok()
        stored = Counter((e["detail"]["run_id"], e["outcome"]) for e in store.audit_entries(limit=100_000))
    finally:
        store.close()
    in_file = Counter((str(e["run_id"]), str(e["outcome"])) for e in lines)
    extra = stored - in_file
    assert not extra, f"records in the store but not in the audit file: {extra}"
    missing = in_file - stored - allowed
    assert not missing, f"records in the audit file but not in the store: {missing}"


def check_backups(scenario: Scenario, originals: dict[Path, bytes]) -> None:
    """Every changed target file has a backup of its original bytes."""
    folder = scenario.data_dir / "backups" / scenario.environment
    backups = {p.read_bytes() for p in folder.rglob("*") if p.is_file() and ".certmon-" not in p.name}
    for path, original in originals.items():
        if path.read_bytes() != original:
            assert original in backups, f"{path} changed and no backup holds its original bytes"


def check_lock_free(scenario: Scenario) -> None:
    """The killed holder's lock is gone with its process."""
    lock = EnvironmentLock(scenario.data_dir, scenario.environment, timeout=0)
    lock.acquire(remediation="crash-test", actor="crash-test", now=datetime.now(UTC))
    lock.release()


def run_to_end(context: ForkServerContext, scenario: Scenario) -> tuple[dict[str, Any], Calibration]:
    """An uninterrupted apply; its result and its steps."""
    child = Child(context, scenario)
    child.go()
    answer = child.result()
    assert answer is not None
    return answer


def crash_loop(context: ForkServerContext, scenario: Scenario, kills: int, seed: int) -> Report:
    """Kill `kills` applies at random points; check the invariants after each, and that a re-run completes."""
    rng = random.Random(seed)
    scenario.reset()
    before = scenario.state()
    originals = {p: p.read_bytes() for p in scenario.files}
    calibrations = []
    for _ in range(2):
        scenario.reset()
        result, steps = run_to_end(context, scenario)
        assert result["outcome"] == "applied" and result["cleared"] is not False, result["message"]
        calibrations.append(steps)
    after = scenario.state()
    assert after != before
    applied = {p: p.read_bytes() for p in scenario.files}
    first = calibrations[0]
    calibration = Calibration(
        int(statistics.median(c.steps for c in calibrations)), first.journal_from, first.journal_to
    )
    report = Report(steps=calibration.steps, journal=(first.journal_from, first.journal_to))
    allowed: Counter[tuple[str, str]] = Counter()
    for index in range(kills):
        scenario.reset()
        assert scenario.state() == before
        child = Child(context, scenario)
        # Half over the whole apply, half while the journal exists (every other one in its first quarter, where
        # the backups, writes and remote calls begin; the re-collection and the audit fill much of a run). The
        # first kill lands before the journal, so every loop sees the "before" state however the draws fall.
        band = (
            "before-journal" if index == 0 else "whole" if index % 2 else ("journal-start", "journal")[index // 2 % 2]
        )
        step = calibration.draw(band, rng)
        child.go(step)
        finished = child.result() is not None
        where = f"{scenario.remediation} kill {index} (seed {seed}, before step {step}{', ran to the end' * finished})"
        state = scenario.state()
        label = "before" if state == before else "after" if state == after else scenario.intermediate(state)
        assert label is not None, f"{where}: the targets are neither before nor after: {state!r}"
        for path in scenario.files if scenario.exact else ():
            assert path.read_bytes() in (originals[path], applied[path]), f"{where}: {path} is torn"
        check_backups(scenario, originals)
        check_lock_free(scenario)
        left_journal = journal_path(scenario).exists()
        lines = audit_lines(scenario)
        if lines:
            # The one record the killed run may have been writing: in the file, not yet in the store.
            allowed[(str(lines[-1]["run_id"]), str(lines[-1]["outcome"]))] = 1
        check_store(scenario, lines, allowed)
        report.kills += 1
        report.states[label] += 1
        report.journal_left += left_journal

        scenario.settle()
        result, _ = run_to_end(context, scenario)
        assert result["outcome"] in ("applied", "nothing-to-do"), f"{where}: re-run: {result['message']}"
        assert result["cleared"] is not False, f"{where}: re-run did not clear: {result['message']}"
        assert scenario.state() == after, f"{where}: re-run left {scenario.state()!r}"
        assert not journal_path(scenario).exists()
        assert temp_leftovers(scenario) == [], f"{where}: temporary files left"
        assert (result["recovered"] is not None) == left_journal, f"{where}: {result['recovered']}"
        report.reruns[result["outcome"]] += 1
        report.recovered += result["recovered"] is not None
    lines = audit_lines(scenario)
    check_store(scenario, lines, allowed)
    outcomes: dict[str, set[str]] = {}
    for entry in lines:
        outcomes.setdefault(str(entry["run_id"]), set()).add(str(entry["outcome"]))
    unfinished = [run for run, seen in outcomes.items() if "started" in seen and not seen & TERMINAL]
    assert not unfinished, f"runs started and never recorded as finished or interrupted: {unfinished}"
    assert sum(1 for e in lines if e["outcome"] == "interrupted") == report.recovered
    return report
