"""Retention: the state store forgets what no rule needs, keeps what the rules need, and an evaluation
never loads the whole history (a million rows used to cost every evaluation seconds and 861 MiB)."""

from __future__ import annotations

import sqlite3
import tracemalloc
from datetime import datetime, timedelta
from pathlib import Path

from daemon.app import Daemon
from daemon.retention import RetentionSettings
from daemon.settings import Settings
from daemon.state import DB_FILE
from simulator.lab import Lab


def _raw(data_dir: Path) -> sqlite3.Connection:
    return sqlite3.connect(data_dir / DB_FILE, isolation_level=None, timeout=30)


def test_retention_prunes_old_rows_and_keeps_the_evidence_rules_need(
    lab: Lab, lab_settings: Settings, tmp_path: Path, now: datetime
) -> None:
    data = tmp_path / "data"
    retention = RetentionSettings(locations_days=1, progress_days=1, audit_days=365, interval_hours=1e-9)
    settings = lab_settings.model_copy(update={"data_dir": data, "retention": retention})
    moment = [now]
    daemon = Daemon(settings, clock=lambda: moment[0])
    try:
        daemon.collect_once()
        old_de = lab.cert("DataEncryption", "old")
        (lab.certs_dir / "AOS1" / f"{old_de.file_stem}.pfx").unlink()
        moment[0] = now + timedelta(hours=1)
        daemon.collect_once()

        day = 86400.0
        t = now.timestamp()
        raw = _raw(data)
        raw.execute(
            "INSERT INTO cert_location (source, node, store, thumbprint, target, first_seen, last_seen, last_absent,"
            " present) VALUES ('certfolder', 'GONE1', 'My', 'AA00', 'GONE1', ?, ?, ?, 0)",
            (t - 600 * day, t - 500 * day, t - 499 * day),
        )
        for age_days in (800, 1):
            raw.execute(
                "INSERT INTO audit (at, actor, host, remediation, target, mode, outcome)"
                " VALUES (?, 'op', 'h', 'r', 't', 'apply', 'ok')",
                (t - age_days * day,),
            )
        for age_days in (60, 3):
            raw.execute(
                "INSERT INTO progress_sample (probe, at, remaining, total) VALUES ('p', ?, 10, 100)",
                (t - age_days * day,),
            )
        raw.close()

        # Three days later: the removal of the old DataEncryption certificate is older than
        # locations_days, but the ConfigTemplate pair still names it, so its history stays.
        moment[0] = now + timedelta(days=3)
        view = daemon.collect_once()
        raw = _raw(data)
        assert raw.execute("SELECT count(*) FROM cert_location WHERE thumbprint = 'AA00'").fetchone()[0] == 0
        (last_absent,) = raw.execute(
            "SELECT last_absent FROM cert_location WHERE thumbprint = ? AND node = 'AOS1' AND present = 0",
            (old_de.thumbprint,),
        ).fetchone()
        assert last_absent == (now + timedelta(hours=1)).timestamp()
        assert [r[0] for r in raw.execute("SELECT at FROM audit")] == [t - 1 * day]
        # progress_days is 1, but the SQL source's rate window (7 days) and stall threshold need more.
        assert [r[0] for r in raw.execute("SELECT at FROM progress_sample WHERE probe = 'p'")] == [t - 3 * day]
        raw.close()
        removed = [
            f
            for f in view.evaluation.findings
            if f.rule == "data-encryption-old-cert-removed-early" and f.node == "AOS1"
        ]
        assert removed and "removed from AOS1 (seen there until" in removed[0].message
    finally:
        daemon.stop()


def test_an_evaluation_does_not_load_the_whole_history(lab_settings: Settings, tmp_path: Path, now: datetime) -> None:
    data = tmp_path / "data"
    settings = lab_settings.model_copy(update={"data_dir": data})
    daemon = Daemon(settings, clock=lambda: now)
    try:
        daemon.collect_once()
        rows = 300_000
        t = now.timestamp()
        raw = _raw(data)
        raw.execute("BEGIN")
        raw.executemany(
            "INSERT INTO cert_location (source, node, store, thumbprint, target, subject_cn, first_seen, last_seen,"
            " last_absent, present) VALUES ('winrm', ?, 'LocalMachine\\My', ?, ?, 'app.example', ?, ?, ?, ?)",
            (
                (f"N{i % 500}", f"{i:040X}", f"N{i % 500}", t - 86400, t, t if i % 2 else None, i % 2)
                for i in range(rows)
            ),
        )
        raw.execute("COMMIT")
        raw.close()
        tracemalloc.start()
        try:
            daemon.publish()
            _, peak = tracemalloc.get_traced_memory()
        finally:
            tracemalloc.stop()
        # Loading 300,000 history rows as objects takes well over 100 MiB; the queries the rules need, little.
        assert peak < 48 * 1024 * 1024, f"an evaluation allocated {peak / 2**20:.0f} MiB"
    finally:
        daemon.stop()
