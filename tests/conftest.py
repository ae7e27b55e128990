"""Fixtures shared by every test: a generated lab, a fixed clock, free ports, the CLI, the SF gateway."""

from __future__ import annotations

import dataclasses
import os
import shutil
import socket
import subprocess
import sys
import uuid
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest

from daemon.settings import Settings, load_settings
from simulator.lab import Lab, build_lab
from simulator.postgres import PgEnvironment, PostgresServer, find_bin_dir, odbc_driver_installed
from tests.sfkit import SfLab, sf_lab

ROOT = Path(__file__).resolve().parent.parent
NOW = datetime(2026, 11, 27, 12, 0, 0, tzinfo=UTC)


@pytest.fixture
def now() -> datetime:
    """The fixed moment tests run at."""
    return NOW


@pytest.fixture
def lab(tmp_path: Path) -> Lab:
    """A freshly generated lab environment, mid-rotation (staged)."""
    return build_lab(tmp_path / "lab", now=NOW, port=0)


@pytest.fixture
def lab_before(tmp_path: Path) -> Lab:
    """A freshly generated lab environment before the rotation (stage before)."""
    return build_lab(tmp_path / "lab", now=NOW, stage="before", port=0)


@pytest.fixture(scope="session")
def lab_template(tmp_path_factory: pytest.TempPathFactory) -> Lab:
    """One lab per session, never modified: copy it with `lab_copy` (building one takes seconds)."""
    return build_lab(tmp_path_factory.mktemp("lab-template") / "lab", now=NOW, port=0)


@pytest.fixture
def lab_copy(lab_template: Lab, tmp_path: Path) -> Lab:
    """A private copy of the session's lab, for tests that change files in it."""
    root = tmp_path / "lab"
    shutil.copytree(lab_template.root, root)
    return dataclasses.replace(lab_template, root=root)


@pytest.fixture
def lab_settings(lab: Lab) -> Settings:
    """Settings loaded from the lab's certmon.yaml."""
    return load_settings(lab.config_file)


def free_port() -> int:
    """A TCP port nobody listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture
def run_cli() -> Callable[..., subprocess.CompletedProcess[str]]:
    """Run `python -m daemon ARGS` in a subprocess, as an operator would."""

    def run(
        *args: str, env: dict[str, str] | None = None, timeout: float = 120, cwd: Path | None = None
    ) -> subprocess.CompletedProcess[str]:
        full_env = {k: v for k, v in os.environ.items() if not k.startswith("CERTMON_")}
        full_env["PYTHONPATH"] = str(ROOT)
        full_env.update(env or {})
        return subprocess.run(
            [sys.executable, "-m", "daemon", *args],
            capture_output=True,
            text=True,
            env=full_env,
            timeout=timeout,
            cwd=cwd or ROOT,
            check=False,
        )

    return run


@pytest.fixture
def sf(lab_copy: Lab) -> Iterator[SfLab]:
    """A lab copy with its simulated Service Fabric gateway running on a manual clock."""
    with sf_lab(lab_copy) as running:
        yield running


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[PostgresServer]:
    """One private PostgreSQL server for the session (Debian's postgresql, reached through psqlODBC)."""
    if find_bin_dir() is None or not odbc_driver_installed():
        pytest.skip("PostgreSQL or psqlODBC is not installed (scripts/system-packages installs them)")
    with PostgresServer() as server:
        yield server


@pytest.fixture
def pg(postgres_server: PostgresServer) -> PgEnvironment:
    """A fresh AXDB and OrchestratorData pair, and a login allowed to use them."""
    return PgEnvironment(postgres_server, uuid.uuid4().hex[:10])
