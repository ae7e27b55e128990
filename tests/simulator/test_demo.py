"""`certmon demo`: its flags, simulated time, and moving a running demo with --set-stage."""

from __future__ import annotations

import json
import stat
import subprocess
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from daemon.clock import ScaledClock
from simulator.control import CONTROL_FILE
from simulator.demo import MIN_INTERVAL_SECONDS, Demo, DemoOptions, scale_schedule

Cli = Callable[..., subprocess.CompletedProcess[str]]


@pytest.fixture
def running(tmp_path: Path) -> Iterator[Demo]:
    """A demo at staged, time 600x, running in this process with its control endpoint."""
    with Demo(DemoOptions(directory=tmp_path / "demo", port=0, speed=600), echo=lambda text: None) as demo:
        yield demo


def test_scale_schedule_divides_intervals_down_to_a_floor() -> None:
    config: dict[str, Any] = {
        "sources": {
            "winrm": {"interval_seconds": 600, "jitter_seconds": 30},
            "tls": {"interval_seconds": 60},
            "adfs": {"enabled": True},
        }
    }
    scale_schedule(config, 100)
    assert config["sources"]["winrm"] == {"interval_seconds": 6.0, "jitter_seconds": 0.6}
    assert config["sources"]["tls"]["interval_seconds"] == MIN_INTERVAL_SECONDS
    assert config["sources"]["adfs"] == {"enabled": True}


def test_the_demo_runs_on_simulated_time(running: Demo) -> None:
    assert running.lab is not None
    config = yaml.safe_load(running.lab.config_file.read_text())
    assert config["simulated_time"]["speed"] == 600
    # `certmon status` and `remediate` read the same file, so they agree with the daemon on the time.
    assert isinstance(running.daemon.clock, ScaledClock) and running.daemon.clock.speed == 600
    intervals = [s["interval_seconds"] for s in config["sources"].values() if "interval_seconds" in s]
    assert intervals and all(i == MIN_INTERVAL_SECONDS for i in intervals)
    # The simulated cluster walks its upgrade domains on the same clock.
    gateway = running.rotation.services.sf_gateway if running.rotation else None
    assert gateway is not None and gateway.cluster.wall is running.clock


def test_the_control_file_is_private_and_goes_away(tmp_path: Path) -> None:
    demo = Demo(DemoOptions(directory=tmp_path / "demo", port=0), echo=lambda text: None).start()
    path = tmp_path / "demo" / CONTROL_FILE
    try:
        document = json.loads(path.read_text())
        assert stat.S_IMODE(path.stat().st_mode) == 0o600
        assert document["control"].startswith("http://127.0.0.1:")
        assert document["metrics"] == f"{demo.daemon.http.url}/metrics" if demo.daemon.http else False
        assert document["status_page"].endswith("/")
    finally:
        demo.close()
    assert not path.exists()


def _control(demo: Demo, method: str, path: str, body: bytes | None = None, token: str | None = None) -> int:
    assert demo.control is not None
    request = urllib.request.Request(demo.control.url + path, data=body, method=method)
    if token is not None:
        request.add_header("Authorization", f"Bearer {token}")
    try:
        with urllib.request.urlopen(request, timeout=10) as reply:
            return int(reply.status)
    except urllib.error.HTTPError as err:
        return err.code


def test_the_control_endpoint_wants_its_token(running: Demo) -> None:
    assert running.control is not None
    token = running.control.token
    assert _control(running, "GET", "/stage") == 401
    assert _control(running, "GET", "/stage", token="wrong") == 401
    assert _control(running, "POST", "/stage", b'{"stage": "done"}') == 401
    assert _control(running, "GET", "/stage", token=token) == 200
    assert _control(running, "GET", "/other", token=token) == 404
    assert _control(running, "POST", "/stage", b"not json", token=token) == 400
    assert _control(running, "POST", "/stage", b'{"stage": "before"}', token=token) == 409
    assert running.rotation is not None and running.rotation.stage == "staged"


def test_set_stage_moves_the_running_demo(running: Demo, run_cli: Cli) -> None:
    assert running.lab is not None and running.rotation is not None
    root = str(running.lab.root)
    done = run_cli("demo", "--dir", root, "--set-stage", "upgraded", timeout=300)
    assert done.returncode == 0, done.stderr
    # The client prints what the demo does, as the demo does it (the cluster walks its domains).
    assert "certmon remediate sf-stage-rotation --apply: applied" in done.stdout
    assert "RollingForwardCompleted" in done.stdout
    assert done.stdout.strip().endswith(f"the demo in {root} is at stage upgraded")
    assert running.rotation.stage == "upgraded"
    steps = {s.step: s.status.value for s in running.daemon.collect_once().evaluation.checklist.steps}
    assert steps["sf-upgraded"] == "done"

    back = run_cli("demo", "--dir", root, "--set-stage", "staged")
    assert back.returncode == 1
    assert "a rotation does not go back from upgraded to staged" in back.stderr
    assert running.rotation.stage == "upgraded"


def test_set_stage_without_a_running_demo(tmp_path: Path, run_cli: Cli) -> None:
    done = run_cli("demo", "--dir", str(tmp_path), "--set-stage", "done")
    assert done.returncode == 1
    assert f"{tmp_path / CONTROL_FILE} does not exist: no demo is running with --dir {tmp_path}" in done.stderr
    nodir = run_cli("demo", "--set-stage", "done")
    assert nodir.returncode == 2 and "--set-stage needs the --dir of the running demo" in nodir.stderr


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("--stage", "halfway"), "invalid choice: 'halfway'"),
        (("--set-stage", "halfway"), "invalid choice: 'halfway'"),
        (("--speed", "0", "--no-run"), "--speed must be positive"),
        (("--speed", "fast"), "invalid float value: 'fast'"),
    ],
)
def test_bad_demo_flags_are_usage_errors(tmp_path: Path, run_cli: Cli, args: tuple[str, ...], message: str) -> None:
    done = run_cli("demo", "--dir", str(tmp_path / "demo"), *args)
    assert done.returncode == 2
    assert message in done.stderr


def test_demo_help_lists_the_stages(run_cli: Cli) -> None:
    done = run_cli("demo", "--help", env={"COLUMNS": "200"})
    assert done.returncode == 0
    help_text = " ".join(done.stdout.split())
    assert (
        "rotation stage (default staged): before, staged, key-acl-missing, upgraded, re-encrypting, removed-early, done"
        in help_text
    )
    assert "--speed N" in help_text and "--set-stage STAGE" in help_text
