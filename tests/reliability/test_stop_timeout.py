"""SIGTERM ends `certmon run` within its stop timeout while a node hangs and another trickles its answer.

The WinRM deadline is ten minutes, far past the stop timeout: the stop must not wait for it.
The test waits for both nodes to have received a request from the daemon (the simulated nodes'
request counters), then sends SIGTERM and waits, bounded, for the process to end.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from simulator.lab import Lab, write_config
from simulator.winrm import SimulatedFleet

ROOT = Path(__file__).resolve().parents[2]
STOP_SECONDS = 5.0
WINRM_DEADLINE = 600
# Start-up of the interpreter and logging on a loaded machine, beyond the stop timeout itself.
SLACK = 25.0

pytestmark = pytest.mark.slow


def _wait_for_requests(fleet: SimulatedFleet, names: list[str], proc: subprocess.Popen[bytes]) -> None:
    """Until every named node has received a request from the daemon (polling the nodes' counters)."""
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        assert proc.poll() is None, proc.stderr.read().decode() if proc.stderr else ""
        if all(fleet[name].counters.snapshot()["requests"] for name in names):
            return
        time.sleep(0.05)
    raise AssertionError("the daemon never reached the nodes")


def test_sigterm_ends_within_the_stop_timeout_whatever_the_nodes_do(lab_copy: Lab) -> None:
    names = ["AOS1", "ORCH1"]
    with SimulatedFleet.from_lab(lab_copy, names=names) as fleet:
        fleet["AOS1"].configure(hang=True)
        fleet["ORCH1"].configure(hostile_answer="trickle-body", trickle_interval=0.5)
        write_config(lab_copy, 0, fleet.addresses())
        config = yaml.safe_load(lab_copy.config_file.read_text(encoding="utf-8"))
        config["sources"]["winrm"].update(config_template=None, nodes=names, timeout_seconds=WINRM_DEADLINE)
        config["stop_timeout_seconds"] = STOP_SECONDS
        lab_copy.config_file.write_text(yaml.safe_dump(config, sort_keys=False), encoding="utf-8")
        env = {k: v for k, v in os.environ.items() if not k.startswith("CERTMON_")}
        env["PYTHONPATH"] = str(ROOT)
        proc = subprocess.Popen(
            [sys.executable, "-m", "daemon", "-c", str(lab_copy.config_file), "run"],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            env=env,
            cwd=ROOT,
        )
        try:
            _wait_for_requests(fleet, names, proc)
            proc.send_signal(signal.SIGTERM)
            started = time.monotonic()
            _out, err = proc.communicate(timeout=STOP_SECONDS + SLACK)
            elapsed = time.monotonic() - started
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.communicate()
    print(f"\nSIGTERM to exit: {elapsed:.1f} s (stop timeout {STOP_SECONDS:.0f} s, WinRM deadline {WINRM_DEADLINE} s)")
    assert proc.returncode == 0, err.decode()
    assert elapsed < STOP_SECONDS + SLACK
    assert lab_copy.winrm_password not in err.decode()


@pytest.mark.skipif(not hasattr(signal, "SIGHUP"), reason="SIGHUP is POSIX")
def test_a_reload_is_not_held_by_a_hung_node(lab_copy: Lab, tmp_path: Path) -> None:
    """SIGHUP while a node hangs: the reload ends within the stop timeout (reloaded, or exit 1 for a restart)."""
    names = ["AOS1", "ORCH1"]
    log = tmp_path / "certmon.log"
    with SimulatedFleet.from_lab(lab_copy, names=names) as fleet:
        fleet["AOS1"].configure(hang=True)
        fleet["ORCH1"].configure(hostile_answer="trickle-body", trickle_interval=0.5)
        write_config(lab_copy, 0, fleet.addresses())
        config = yaml.safe_load(lab_copy.config_file.read_text(encoding="utf-8"))
        config["sources"]["winrm"].update(config_template=None, nodes=names, timeout_seconds=WINRM_DEADLINE)
        config["stop_timeout_seconds"] = STOP_SECONDS
        lab_copy.config_file.write_text(yaml.safe_dump(config, sort_keys=False), encoding="utf-8")
        env = {k: v for k, v in os.environ.items() if not k.startswith("CERTMON_")}
        env["PYTHONPATH"] = str(ROOT)
        with log.open("wb") as stderr:
            proc = subprocess.Popen(
                [sys.executable, "-m", "daemon", "-c", str(lab_copy.config_file), "run"],
                stdout=subprocess.DEVNULL,
                stderr=stderr,
                env=env,
                cwd=ROOT,
            )
        try:
            _wait_for_requests(fleet, names, proc)
            proc.send_signal(signal.SIGHUP)
            started = time.monotonic()
            while time.monotonic() - started < STOP_SECONDS + SLACK:
                text = log.read_text()
                if proc.poll() is not None or "configuration reloaded" in text:
                    break
                time.sleep(0.1)
            elapsed = time.monotonic() - started
            text = log.read_text()
        finally:
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
                try:
                    proc.wait(timeout=STOP_SECONDS + SLACK)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait()
    print(f"\nSIGHUP to reload or exit: {elapsed:.1f} s, exit code {proc.returncode}")
    assert elapsed < STOP_SECONDS + SLACK, text
    reloaded = "configuration reloaded" in text
    restarted = proc.returncode == 1 and "did not stop within" in text
    assert reloaded or restarted, text
    assert lab_copy.winrm_password not in text
