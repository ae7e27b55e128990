"""Secret files the lab and the demo generate are owner-only (0600) from the moment they exist."""

from __future__ import annotations

import os
import stat
from datetime import UTC, datetime
from pathlib import Path

import pytest

from daemon.demo import API_TOKEN_FILE, DemoOptions, _demo_config
from simulator.lab import build_lab
from simulator.secretfile import write_secret
from simulator.servicefabric import write_client_files

pytestmark = pytest.mark.skipif(os.name == "nt", reason="POSIX modes")


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_lab_and_demo_secrets_are_owner_only(tmp_path: Path) -> None:
    old_umask = os.umask(0o022)  # the usual umask: a plain write_text gives 0644
    try:
        now = datetime(2026, 11, 27, 12, tzinfo=UTC)
        lab = build_lab(tmp_path / "lab", now=now, port=0)
        _demo_config(lab, DemoOptions(directory=lab.root), now)
        client_files = write_client_files(lab)
    finally:
        os.umask(old_umask)
    secrets_dir = lab.root / "secrets"
    assert _mode(secrets_dir) == 0o700
    secret_files = [lab.password_file, lab.winrm_password_file, lab.ntlm_user_file, lab.root / API_TOKEN_FILE]
    secret_files += sorted(lab.certs_dir.rglob("*.pfx")) + list(client_files.values())
    assert len(secret_files) > 10
    wrong = {str(p.relative_to(lab.root)): oct(_mode(p)) for p in secret_files if _mode(p) != 0o600}
    assert wrong == {}
    assert not list(secrets_dir.glob(".*.tmp")), "no temporary file is left behind"


def test_rewriting_a_world_readable_secret_narrows_it(tmp_path: Path) -> None:
    path = tmp_path / "token.txt"
    path.write_text("old\n", encoding="utf-8")
    path.chmod(0o644)
    write_secret(path, "new\n")
    assert path.read_text(encoding="utf-8") == "new\n"
    assert _mode(path) == 0o600
