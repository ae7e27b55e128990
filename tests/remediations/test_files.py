"""Atomic writes, leftovers of interrupted writes, and backups."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from collectors.errors import CollectorError, Reason
from remediations.files import atomic_write, remove_stale_temp_files, stale_temp_files, write_backup


def test_atomic_write_replaces_content_and_keeps_permissions(tmp_path: Path) -> None:
    target = tmp_path / "config.json"
    target.write_bytes(b"old")
    os.chmod(target, 0o640)
    atomic_write(target, b"new")
    assert target.read_bytes() == b"new"
    assert target.stat().st_mode & 0o777 == 0o640
    assert stale_temp_files(target) == []
    assert sorted(p.name for p in tmp_path.iterdir()) == ["config.json"]


def test_atomic_write_through_a_symlink_keeps_the_link(tmp_path: Path) -> None:
    real = tmp_path / "real" / "localagent-config.json"
    real.parent.mkdir()
    real.write_bytes(b"old")
    link = tmp_path / "localagent-config.json"
    link.symlink_to(real)
    atomic_write(link, b"new")
    assert link.is_symlink()
    assert real.read_bytes() == b"new"
    assert stale_temp_files(real) == []


@pytest.mark.skipif(os.name == "nt" or os.geteuid() != 0, reason="only root can give a file away")
def test_atomic_write_keeps_the_owner(tmp_path: Path) -> None:
    target = tmp_path / "config.json"
    target.write_bytes(b"old")
    os.chown(target, 1234, 5678)
    atomic_write(target, b"new")
    assert (target.stat().st_uid, target.stat().st_gid) == (1234, 5678)


def test_atomic_write_failure_leaves_the_target_and_no_temporary_file(tmp_path: Path) -> None:
    target = tmp_path / "is-a-folder"
    target.mkdir()
    (target / "inside").write_bytes(b"kept")
    with pytest.raises(CollectorError) as caught:
        atomic_write(target, b"new")
    assert caught.value.source == str(target)
    assert (target / "inside").read_bytes() == b"kept"
    assert stale_temp_files(target) == []


def test_atomic_write_into_a_missing_folder_names_it(tmp_path: Path) -> None:
    with pytest.raises(CollectorError) as caught:
        atomic_write(tmp_path / "missing" / "config.json", b"x")
    assert caught.value.reason is Reason.NOT_FOUND


def test_only_our_own_leftovers_are_removed(tmp_path: Path) -> None:
    target = tmp_path / "localagent-config.json"
    target.write_bytes(b"{}")
    ours = [tmp_path / ".localagent-config.json.certmon-a1b2.tmp", tmp_path / ".localagent-config.json.certmon-zz.tmp"]
    theirs = [tmp_path / ".localagent-config.json.swp", tmp_path / ".other.json.certmon-a1.tmp", tmp_path / "x.tmp"]
    for path in ours + theirs:
        path.write_bytes(b"partial")
    assert remove_stale_temp_files(target) == sorted(ours)
    assert all(p.exists() for p in theirs)
    assert target.read_bytes() == b"{}"


def test_backups_are_private_and_never_overwritten(tmp_path: Path) -> None:
    original = tmp_path / "Credentials.json"
    folder = tmp_path / "backups" / "run"
    first = write_backup(original, b"one", folder)
    second = write_backup(original, b"two", folder)
    assert (first.name, first.read_bytes()) == ("Credentials.json", b"one")
    assert (second.name, second.read_bytes()) == ("2-Credentials.json", b"two")
    assert first.stat().st_mode & 0o777 == 0o600
    assert folder.stat().st_mode & 0o777 == 0o700
