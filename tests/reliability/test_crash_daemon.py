"""SIGKILL `certmon run` mid-cycle, again and again: the state store stays intact and keeps its history.

The daemon runs the lab with every source on a 0.3 s interval, so it is always collecting or
writing: certificate locations, re-encryption progress samples (the lab's SQL probe), evaluation.
Each run is killed at a seeded-random step once it has written a cycle: the daemon runs under
`tests.reliability.killrun`, which counts its I/O events and calls that write, commit or exchange
bytes, and SIGKILLs it a drawn number of steps after the test saw the new sample (up to three
cycles' worth, measured on the first run), so a busy machine does not move the kills. After every kill the
store must pass `PRAGMA integrity_check` and still hold everything it held before the run
(an operator's audit entry from before, every location and progress sample); the last run is
stopped cleanly and must have resumed: new samples, exit code 0.
"""

from __future__ import annotations

import os
import random
import select
import signal
import sqlite3
import subprocess
import sys
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import pytest
import yaml

from daemon.state import DB_FILE, StateStore
from simulator.lab import Lab

ROOT = Path(__file__).resolve().parents[2]
KILLS = 8
INTERVAL = 0.3

pytestmark = pytest.mark.slow


def _fast_lab(lab: Lab) -> None:
    config = yaml.safe_load(lab.config_file.read_text(encoding="utf-8"))
    for section in config["sources"].values():
        if isinstance(section, dict):
            section["interval_seconds"] = INTERVAL
    lab.config_file.write_text(yaml.safe_dump(config, sort_keys=False), encoding="utf-8")


@dataclass
class Daemon:
    """A `certmon run` under the step counter, and the pipe its counter answers on."""

    proc: subprocess.Popen[bytes]
    replies: int

    def now(self) -> int:
        """The daemon's step count."""
        assert self.proc.stdin is not None
        self.proc.stdin.write(b"now\n")
        self.proc.stdin.flush()
        ready, _, _ = select.select([self.replies], [], [], 60)
        assert ready, "the daemon's step counter did not answer"
        return int(os.read(self.replies, 64).split()[0])

    def kill_in(self, steps: int) -> None:
        """SIGKILL `steps` steps from now; waits for the process to end."""
        assert self.proc.stdin is not None
        self.proc.stdin.write(f"kill {steps}\n".encode())
        self.proc.stdin.flush()
        try:
            self.proc.wait(timeout=120)
        finally:
            self.proc.kill()  # the step never came: end it anyway (the asserts below say so)
            self.close()
        assert self.proc.returncode == -signal.SIGKILL

    def close(self) -> None:
        """Collect the process and close the pipes."""
        self.proc.communicate(timeout=60)
        os.close(self.replies)


def _daemon(lab: Lab) -> Daemon:
    replies, write_end = os.pipe()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("CERTMON_", "KILLPOINT_"))}
    env["PYTHONPATH"] = str(ROOT)
    env["KILLPOINT_CONTROL"] = str(write_end)
    proc = subprocess.Popen(
        [sys.executable, "-m", "tests.reliability.killrun", "-c", str(lab.config_file), "run"],
        stdin=subprocess.PIPE,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        env=env,
        cwd=ROOT,
        pass_fds=(write_end,),
    )
    os.close(write_end)
    return Daemon(proc, replies)


def _history(lab: Lab) -> tuple[set[tuple[object, ...]], set[tuple[object, ...]], set[tuple[object, ...]]]:
    """Audit entries, location rows (first seen), progress samples; after the integrity check passed."""
    db = sqlite3.connect(lab.data_dir / DB_FILE, timeout=30)
    try:
        assert db.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        audit = set(db.execute("SELECT id, remediation, outcome, detail FROM audit").fetchall())
        locations = set(db.execute("SELECT source, node, store, thumbprint, first_seen FROM cert_location").fetchall())
        samples = set(db.execute("SELECT probe, at, remaining FROM progress_sample").fetchall())
    finally:
        db.close()
    return audit, locations, samples


def _wait_for_new_sample(lab: Lab, seen: int, proc: subprocess.Popen[bytes]) -> None:
    """Until the running daemon has written another progress sample (polling its store, not the clock)."""
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        assert proc.poll() is None, proc.stderr.read().decode() if proc.stderr else ""
        try:
            db = sqlite3.connect(lab.data_dir / DB_FILE, timeout=30)
            try:
                count = db.execute("SELECT COUNT(*) FROM progress_sample").fetchone()[0]
            finally:
                db.close()
        except sqlite3.OperationalError:
            count = 0  # not created yet
        if count > seen:
            return
        time.sleep(0.05)
    raise AssertionError("the daemon wrote no progress sample")


def test_sigkill_mid_cycle_keeps_the_store_and_its_history(lab_copy: Lab) -> None:
    _fast_lab(lab_copy)
    store = StateStore(lab_copy.data_dir)
    store.add_audit(
        at=datetime.now(UTC),
        actor="operator",
        host="mgmt1",
        remediation="localagent-config-update",
        target=str(lab_copy.localagent_config),
        mode="apply",
        outcome="applied",
        detail={"run_id": "before-the-crashes"},
    )
    store.close()
    seed = random.SystemRandom().randrange(2**32)
    rng = random.Random(seed)
    audit, locations, samples = _history(lab_copy)
    per_cycle = 0
    for index in range(KILLS):
        daemon = _daemon(lab_copy)
        _wait_for_new_sample(lab_copy, len(samples), daemon.proc)
        if not per_cycle:
            # How many steps a cycle takes: between two samples of the first run.
            first = daemon.now()
            _wait_for_new_sample(lab_copy, len(samples) + 1, daemon.proc)
            per_cycle = max(1, daemon.now() - first)
        # Somewhere in the next cycles: collecting, evaluating, or writing locations and samples.
        steps = rng.randrange(0, 3 * per_cycle)
        daemon.kill_in(steps)
        now_audit, now_locations, now_samples = _history(lab_copy)
        where = f"kill {index} (seed {seed}, {steps} steps after a sample; {per_cycle} steps a cycle)"
        assert audit <= now_audit, f"{where}: audit entries lost"
        assert {row[:4] for row in locations} <= {row[:4] for row in now_locations}, f"{where}: locations lost"
        # first_seen never moves: the history of where a certificate was is kept.
        assert locations <= now_locations, f"{where}: first_seen rewritten"
        assert samples <= now_samples and len(now_samples) > len(samples), f"{where}: progress samples lost"
        audit, locations, samples = now_audit, now_locations, now_samples
    # The daemon resumes on the same store, and stops cleanly.
    daemon = _daemon(lab_copy)
    try:
        _wait_for_new_sample(lab_copy, len(samples), daemon.proc)
    finally:
        daemon.proc.send_signal(signal.SIGTERM)
        _out, err = daemon.proc.communicate(timeout=60)
        os.close(daemon.replies)
    assert daemon.proc.returncode == 0, err.decode()
    final = _history(lab_copy)
    assert audit <= final[0] and locations <= final[1] and samples < final[2]
    assert any(row[3] == '{"run_id": "before-the-crashes"}' for row in final[0])
    print(
        f"\n{KILLS} kills mid-cycle (seed {seed}, {per_cycle} steps a cycle): {len(final[1])} locations, "
        f"{len(final[2])} progress samples kept"
    )
