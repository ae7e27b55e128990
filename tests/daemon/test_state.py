"""The state store: location history across restarts, WAL, migrations."""

from __future__ import annotations

import sqlite3
from datetime import timedelta
from pathlib import Path

import pytest

from collectors.base import Deadline
from collectors.certfolder import CertFolderCollector
from daemon.state import MIGRATIONS, StateError, StateStore
from simulator.lab import Lab


def test_history_survives_a_restart_and_marks_removals(lab: Lab, tmp_path: Path, now) -> None:  # type: ignore[no-untyped-def]
    collector = CertFolderCollector(lab.certs_dir, lab.password.encode())
    old_de = lab.cert("DataEncryption", "old")
    store = StateStore(tmp_path / "data")
    first = store.record_locations(
        "certfolder", "AOS1", collector.collect("AOS1", Deadline.after(30)).certificates, now
    )
    assert ("AOS1", "LocalMachine\\My", old_de.thumbprint) in first.appeared
    store.close()

    (lab.certs_dir / "AOS1" / f"{old_de.file_stem}.pfx").unlink()
    later = now + timedelta(days=1)
    reopened = StateStore(tmp_path / "data")
    changes = reopened.record_locations(
        "certfolder", "AOS1", collector.collect("AOS1", Deadline.after(30)).certificates, later
    )
    assert changes.disappeared == (("AOS1", "LocalMachine\\My", old_de.thumbprint),)
    assert changes.appeared == ()
    (row,) = reopened.locations([old_de.thumbprint])
    assert not row.present
    assert row.first_seen == now and row.last_seen == now and row.last_absent == later
    assert row.subject_cn == "DataEncryption.d365ffo.onprem"
    others = [r for r in reopened.locations() if r.thumbprint != old_de.thumbprint]
    assert all(r.present and r.last_seen == later and r.first_seen == now for r in others)

    (lab.certs_dir / "AOS1" / f"{old_de.file_stem}.pfx").write_bytes(
        (lab.certs_dir / "AOS2" / f"{old_de.file_stem}.pfx").read_bytes()
    )
    back = reopened.record_locations(
        "certfolder", "AOS1", collector.collect("AOS1", Deadline.after(30)).certificates, later + timedelta(hours=1)
    )
    assert back.appeared == (("AOS1", "LocalMachine\\My", old_de.thumbprint),)
    (row,) = reopened.locations([old_de.thumbprint])
    assert row.present and row.last_absent == later
    assert reopened.integrity_ok()


def test_wal_mode_and_schema_version(tmp_path: Path) -> None:
    store = StateStore(tmp_path)
    assert store.schema_version == len(MIGRATIONS)
    store.close()
    raw = sqlite3.connect(tmp_path / "certmon.db")
    assert raw.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    tables = {r[0] for r in raw.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
    assert {"cert_location", "audit", "progress_sample"} <= tables
    raw.close()


def test_migrates_an_older_database_in_place(tmp_path: Path, now) -> None:  # type: ignore[no-untyped-def]
    raw = sqlite3.connect(tmp_path / "certmon.db")
    raw.executescript(MIGRATIONS[0])
    raw.execute(
        "INSERT INTO cert_location (source, node, store, thumbprint, target, first_seen, last_seen)"
        " VALUES ('winrm', 'AOS1', 'My', 'AB', 'AOS1', 1, 2)"
    )
    raw.execute("PRAGMA user_version = 1")
    raw.commit()
    raw.close()
    store = StateStore(tmp_path)
    assert store.schema_version == len(MIGRATIONS)
    assert [r.thumbprint for r in store.locations()] == ["AB"]
    store.add_audit(
        at=now,
        actor="op",
        host="h",
        remediation="r",
        target="t",
        mode="dry-run",
        outcome="ok",
        detail={"diff": "-a\n+b"},
    )
    assert store.audit_entries()[0]["detail"] == {"diff": "-a\n+b"}


def test_refuses_a_newer_schema(tmp_path: Path) -> None:
    raw = sqlite3.connect(tmp_path / "certmon.db")
    raw.execute(f"PRAGMA user_version = {len(MIGRATIONS) + 1}")
    raw.commit()
    raw.close()
    with pytest.raises(StateError, match="newer than this certmon"):
        StateStore(tmp_path)


def test_unwritable_data_dir_is_a_clear_error(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    with pytest.raises(StateError, match="cannot open the state store"):
        StateStore(blocker / "data")
