"""SIGKILL `certmon run` mid-cycle, again and again: the state store stays intact and keeps its history.

The daemon runs the lab with every source on a 0.3 s interval, so it is always collecting or
writing: certificate locations, re-encryption progress samples (the lab's SQL probe), evaluation.
Each run is killed at a seeded-random moment once it has written a cycle. After every kill the
store must pass `PRAGMA integrity_check` and still hold everything it held before the run
(an operator's audit entry from before, every location and progress sample); the last run is
stopped cleanly and must have resumed: new samples, exit code 0.
"""

from __future__ import annotations

import os
import random
import signal
import sqlite3
import subprocess
import sys
import time
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


def _daemon(lab: Lab) -> subprocess.Popen[bytes]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("CERTMON_")}
    env["PYTHONPATH"] = str(ROOT)
    return subprocess.Popen(
        [sys.executable, "-m", "daemon", "-c", str(lab.config_file), "run"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        env=env,
        cwd=ROOT,
    )


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
    for index in range(KILLS):
        proc = _daemon(lab_copy)
        try:
            _wait_for_new_sample(lab_copy, len(samples), proc)
            # Somewhere in the next cycles: collecting, evaluating, or writing locations and samples.
            time.sleep(rng.uniform(0.0, 3 * INTERVAL))
        finally:
            proc.send_signal(signal.SIGKILL)
            proc.communicate(timeout=30)
        now_audit, now_locations, now_samples = _history(lab_copy)
        where = f"kill {index} (seed {seed})"
        assert audit <= now_audit, f"{where}: audit entries lost"
        assert {row[:4] for row in locations} <= {row[:4] for row in now_locations}, f"{where}: locations lost"
        # first_seen never moves: the history of where a certificate was is kept.
        assert locations <= now_locations, f"{where}: first_seen rewritten"
        assert samples <= now_samples and len(now_samples) > len(samples), f"{where}: progress samples lost"
        audit, locations, samples = now_audit, now_locations, now_samples
    # The daemon resumes on the same store, and stops cleanly.
    proc = _daemon(lab_copy)
    try:
        _wait_for_new_sample(lab_copy, len(samples), proc)
    finally:
        proc.send_signal(signal.SIGTERM)
        _out, err = proc.communicate(timeout=60)
    assert proc.returncode == 0, err.decode()
    final = _history(lab_copy)
    assert audit <= final[0] and locations <= final[1] and samples < final[2]
    assert any(row[3] == '{"run_id": "before-the-crashes"}' for row in final[0])
    print(f"\n{KILLS} kills mid-cycle (seed {seed}): {len(final[1])} locations, {len(final[2])} progress samples kept")
