"""The state store on a failing disk: full, read-only, corrupt, deleted. Collection goes on and says so.

Real faults only: a tmpfs of a few MiB that is filled until the kernel answers ENOSPC or remounted
read-only, a database file overwritten or deleted behind the daemon's back, `certmon run` as a
subprocess for what an operator sees at start.
"""

from __future__ import annotations

import json
import os
import sqlite3
import urllib.error
import urllib.request
from datetime import datetime, timedelta
from pathlib import Path

from daemon.app import Daemon
from daemon.settings import Settings
from daemon.state import DB_FILE, StateStore
from simulator.lab import Lab
from tests.reliability.storekit import fill, remount, small_filesystem


def _get(url: str) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(url, timeout=10) as answer:
            return answer.status, answer.read().decode()
    except urllib.error.HTTPError as err:
        return err.code, err.read().decode()


def _truncate_wal(path: Path) -> None:
    """Move the WAL into the database and cut it to zero, so that the next write needs new blocks."""
    raw = sqlite3.connect(path)
    raw.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    raw.close()


def _ok_targets(daemon: Daemon) -> set[tuple[str, str]]:
    return {(r.source, r.target) for r in daemon.runner.snapshot() if r.health.ok}


def test_full_disk_keeps_collecting_reports_it_and_writes_later(
    lab: Lab, lab_settings: Settings, tmp_path: Path, now: datetime
) -> None:
    with small_filesystem(tmp_path / "fs") as fs:
        settings = lab_settings.model_copy(update={"data_dir": fs / "data"})
        moment = [now]
        daemon = Daemon(settings, clock=lambda: moment[0])
        daemon.start(serve=True, schedule=False)
        try:
            assert daemon.http is not None
            daemon.collect_once()
            healthy = _ok_targets(daemon)
            assert ("certfolder", "AOS1") in healthy
            assert daemon.store.status().up

            _truncate_wal(daemon.store.path)
            filler = fill(fs)
            old_de = lab.cert("DataEncryption", "old")
            (lab.certs_dir / "AOS1" / f"{old_de.file_stem}.pfx").unlink()
            moment[0] = now + timedelta(hours=1)
            view = daemon.collect_once()

            # Every source that worked still works and carries this cycle's data.
            fresh = {
                (r.source, r.target)
                for r in view.evaluation.snapshot
                if r.health.ok and r.health.last_success_at == moment[0]
            }
            assert healthy <= fresh
            aos1 = view.evaluation.snapshot.results[("certfolder", "AOS1")]
            assert aos1.observation is not None
            assert old_de.thumbprint not in {o.thumbprint for o in aos1.observation.certificates}

            status = daemon.store.status()
            assert not status.up and str(status.fault) == "disk-full"
            assert status.pending >= 1
            code, body = _get(daemon.http.url + "/healthz")
            assert code == 503 and json.loads(body)["state_store"] == "disk-full"
            _, metrics = _get(daemon.http.url + "/metrics")
            assert 'certmon_state_store_up{environment="' in metrics
            assert 'fault="disk-full"} 0.0' in metrics
            assert 'certmon_state_store_errors_total{environment="' in metrics
            assert "state-store-failing" in {f.rule for f in view.evaluation.findings}

            # Space again: what waited in memory is written, with the moment it was observed.
            filler.unlink()
            view = daemon.publish()
            status = daemon.store.status()
            assert status.up and status.pending == 0
            assert "state-store-failing" not in {f.rule for f in view.evaluation.findings}
            rows = [r for r in daemon.store.locations([old_de.thumbprint]) if r.node == "AOS1"]
            assert len(rows) == 1 and not rows[0].present and rows[0].last_absent == moment[0]
            assert _get(daemon.http.url + "/healthz")[0] == 200
            assert daemon.store.integrity_ok()
        finally:
            daemon.stop()


def test_read_only_data_dir_at_start_runs_in_memory_and_keeps_the_file(
    lab_settings: Settings, tmp_path: Path, now: datetime
) -> None:
    with small_filesystem(tmp_path / "fs") as fs:
        settings = lab_settings.model_copy(update={"data_dir": fs / "data"})
        first = Daemon(settings, clock=lambda: now)
        first.collect_once()
        rows_before = len(first.store.locations())
        first.stop()
        db = fs / "data" / DB_FILE
        before = db.read_bytes()
        assert rows_before > 0

        remount(fs, "ro")
        daemon = Daemon(settings, clock=lambda: now + timedelta(hours=1))
        daemon.start(serve=True, schedule=False)
        try:
            assert daemon.http is not None
            view = daemon.collect_once()
            assert ("certfolder", "AOS1") in _ok_targets(daemon)
            status = daemon.store.status()
            assert not status.up and status.fault is not None
            assert _get(daemon.http.url + "/healthz")[0] == 503
            assert "state-store-failing" in {f.rule for f in view.evaluation.findings}
        finally:
            daemon.stop()
        remount(fs, "rw")
        assert db.read_bytes() == before
        reopened = StateStore(fs / "data")
        assert len(reopened.locations()) == rows_before and reopened.integrity_ok()
        reopened.close()


def test_database_deleted_while_running_is_written_back(lab_settings: Settings, tmp_path: Path, now: datetime) -> None:
    settings = lab_settings.model_copy(update={"data_dir": tmp_path / "data"})
    daemon = Daemon(settings, clock=lambda: now)
    try:
        daemon.collect_once()
        daemon.store.add_audit(
            at=now, actor="op", host="h", remediation="r", target="t", mode="apply", outcome="ok", detail={}
        )
        rows = len(daemon.store.locations())
        for suffix in ("", "-wal", "-shm"):
            (tmp_path / "data" / (DB_FILE + suffix)).unlink(missing_ok=True)
        daemon.publish()
        assert (tmp_path / "data" / DB_FILE).exists()
        assert daemon.store.status().up
    finally:
        daemon.stop()
    reopened = StateStore(tmp_path / "data")
    assert len(reopened.locations()) == rows
    assert [e["remediation"] for e in reopened.audit_entries()] == ["r"]
    reopened.close()


def test_database_overwritten_while_running_is_kept_aside_and_replaced(
    lab_settings: Settings, tmp_path: Path, now: datetime
) -> None:
    from daemon.remediation import remediation_auditor
    from remediations.audit import AuditRecord

    data = tmp_path / "data"
    settings = lab_settings.model_copy(update={"data_dir": data})
    daemon = Daemon(settings, clock=lambda: now)
    try:
        daemon.collect_once()
        auditor = remediation_auditor(daemon)
        for n in range(3):
            record = AuditRecord(f"run{n}", now, "op", "host", "lab", "localagent-config-update", "t", "apply", "ok")
            assert auditor.record(record) == []
        db = data / DB_FILE
        garbage = os.urandom(db.stat().st_size or 4096)
        with open(db, "r+b") as handle:  # same file, new content: what a stray `dd` or disk fault does
            handle.write(garbage)
        daemon.publish()
        kept = sorted(data.glob(DB_FILE + ".corrupt-*"))
        assert [p.name for p in kept if not p.name.endswith(("-wal", "-shm"))]
        assert kept[0].read_bytes()[: len(garbage)] == garbage
        assert daemon.store.status().up
        assert len(daemon.store.audit_entries()) == 3  # back from audit.jsonl
        assert {r.node for r in daemon.store.locations()} >= {"AOS1"}  # what is known now, recorded again
        assert daemon.store.integrity_ok()
    finally:
        daemon.stop()


def test_corrupt_store_at_start_is_one_line_exit_2_and_a_kept_copy(run_cli, lab: Lab) -> None:  # type: ignore[no-untyped-def]
    data = lab.root / "data"
    data.mkdir(exist_ok=True)
    garbage = b"this is not a SQLite database, it was damaged" * 100
    (data / DB_FILE).write_bytes(garbage)
    done = run_cli("--config", str(lab.config_file), "run", timeout=120)
    assert done.returncode == 2, done.stderr
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in done.stderr, done.stderr
    assert str(data / DB_FILE) in lines[0] and "corrupt" in lines[0]
    (kept,) = data.glob(DB_FILE + ".corrupt-*")
    assert kept.read_bytes() == garbage and kept.name in lines[0]


def test_second_daemon_on_the_same_data_dir_refuses_to_start(run_cli, lab: Lab) -> None:  # type: ignore[no-untyped-def]
    import subprocess
    import sys
    import time

    from tests.conftest import ROOT

    env = {k: v for k, v in os.environ.items() if not k.startswith("CERTMON_")} | {"PYTHONPATH": str(ROOT)}
    first = subprocess.Popen(
        [sys.executable, "-m", "daemon", "--config", str(lab.config_file), "--log-level", "ERROR", "run"],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    holder = lab.root / "data" / "certmon.lock.json"
    try:
        # Wait for the event (the holder names the first daemon), bounded; never a fixed sleep.
        deadline = time.monotonic() + 60
        while not (holder.exists() and f'"pid": {first.pid}' in holder.read_text(encoding="utf-8")):
            assert first.poll() is None, first.stderr.read() if first.stderr else ""
            assert time.monotonic() < deadline, "the first daemon never took the data directory lock"
            time.sleep(0.05)
        second = run_cli("--config", str(lab.config_file), "run", timeout=120)
        assert second.returncode == 2, second.stderr
        assert "another certmon daemon uses this data directory" in second.stderr
        assert f"pid {first.pid}" in second.stderr and "Traceback" not in second.stderr
    finally:
        first.terminate()
        first.wait(timeout=120)
