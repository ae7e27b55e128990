"""The environment lock across processes: refuses with the holder's name, waits, survives SIGKILL."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
from datetime import UTC, datetime
from pathlib import Path

import pytest

from remediations.lock import EnvironmentLock, RemediationBusy

ROOT = Path(__file__).resolve().parents[2]
HOLDER = """
import sys
from datetime import UTC, datetime
from pathlib import Path
from remediations.lock import EnvironmentLock
lock = EnvironmentLock(Path(sys.argv[1]), "prod", timeout=5)
lock.acquire(remediation="sf-stage-rotation", actor="alice", now=datetime.now(UTC))
print("held", flush=True)
sys.stdin.readline()
lock.release()
print("released", flush=True)
sys.stdin.readline()
"""


@pytest.fixture
def holder(tmp_path: Path) -> subprocess.Popen[str]:
    """Another process holding the lock of environment `prod` until told to release it."""
    proc = subprocess.Popen(
        [sys.executable, "-c", HOLDER, str(tmp_path)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )
    assert proc.stdout is not None and proc.stdout.readline() == "held\n"
    yield proc
    proc.kill()
    proc.wait()


def test_busy_lock_names_its_holder(tmp_path: Path, holder: subprocess.Popen[str]) -> None:
    lock = EnvironmentLock(tmp_path, "prod", timeout=0.2)
    with pytest.raises(RemediationBusy) as caught:
        lock.acquire(remediation="localagent-config-update", actor="bob", now=datetime.now(UTC))
    message = str(caught.value)
    assert message.startswith("environment prod: another remediation is running: sf-stage-rotation by alice@")
    assert f"(pid {holder.pid}, since " in message
    assert "waited 0.2 s" in message


def test_other_environments_are_not_blocked(tmp_path: Path, holder: subprocess.Popen[str]) -> None:
    with EnvironmentLock(tmp_path, "test", timeout=0.2) as lock:
        lock.acquire(remediation="x", actor="bob", now=datetime.now(UTC))


def test_a_waiting_process_gets_the_lock_when_released(tmp_path: Path, holder: subprocess.Popen[str]) -> None:
    lock = EnvironmentLock(tmp_path, "prod", timeout=60)
    acquired = threading.Event()

    def wait_for_lock() -> None:
        lock.acquire(remediation="localagent-config-update", actor="bob", now=datetime.now(UTC))
        acquired.set()

    waiter = threading.Thread(target=wait_for_lock)
    waiter.start()
    assert not acquired.wait(0.3)  # still held by the other process
    assert holder.stdin is not None and holder.stdout is not None
    holder.stdin.write("\n")
    holder.stdin.flush()
    assert holder.stdout.readline() == "released\n"
    waiter.join(30)
    assert acquired.is_set()
    assert lock.holder()["actor"] == "bob"
    lock.release()


def test_a_killed_holder_leaves_no_stale_lock(tmp_path: Path, holder: subprocess.Popen[str]) -> None:
    holder.send_signal(signal.SIGKILL)
    holder.wait()
    with EnvironmentLock(tmp_path, "prod", timeout=5) as lock:
        lock.acquire(remediation="localagent-config-update", actor="bob", now=datetime.now(UTC))
        assert lock.holder()["pid"] == os.getpid()
