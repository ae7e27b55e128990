"""The certmon command line, run as a subprocess the way operators run it."""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from simulator.lab import Lab
from tests.conftest import ROOT, free_port


def test_version(run_cli) -> None:  # type: ignore[no-untyped-def]
    done = run_cli("--version")
    assert done.returncode == 0 and done.stdout.startswith("certmon ")


def test_no_command_is_a_usage_error(run_cli) -> None:  # type: ignore[no-untyped-def]
    assert run_cli().returncode == 2
    assert run_cli("frobnicate").returncode == 2


def test_collect_once_json(lab: Lab, run_cli) -> None:  # type: ignore[no-untyped-def]
    done = run_cli("--config", str(lab.config_file), "collect", "--once", "--format", "json")
    assert done.returncode == 1, done.stderr  # the lab has certificates inside their critical window
    payload = json.loads(done.stdout)
    assert payload["environment"] == "demo"
    assert all(source["up"] for source in payload["sources"])
    assert {s["source"] for s in payload["sources"]} == {
        "configtemplate",
        "clusterconfig",
        "localagent",
        "certfolder",
        "sql",
        "agentshare",
        "credentials",
    }
    new_de = lab.cert("DataEncryption", "new").thumbprint
    aos1 = [c for c in payload["certificates"] if c["thumbprint"] == new_de and c["node"] == "AOS1"]
    assert aos1[0]["roles"] == ["DataEncryption"] and aos1[0]["has_private_key"] is True
    assert any(f["rule"] == "cert-expiry-critical" and f["role"] == "ServiceFabric" for f in payload["findings"])
    assert done.stderr == "", "no progress display when stderr is not a terminal"


def test_collect_table_and_status(lab: Lab, run_cli) -> None:  # type: ignore[no-untyped-def]
    done = run_cli("--config", str(lab.config_file), "collect", "--once")
    assert "CERTIFICATES" in done.stdout and "DataEncryption.d365ffo.onprem" in done.stdout
    status = run_cli("--config", str(lab.config_file), "status", "--format", "json")
    payload = json.loads(status.stdout)
    assert status.returncode == 1 and payload["findings"] and "certificates" not in payload


def test_healthy_environment_exits_zero(lab: Lab, tmp_path: Path, run_cli) -> None:  # type: ignore[no-untyped-def]
    config = tmp_path / "ok.yaml"
    config.write_text(
        f"environment: ok\ndata_dir: {tmp_path / 'data'}\nsources:\n  clusterconfig: {{path: {lab.cluster_config}}}\n"
    )
    done = run_cli("--config", str(config), "status")
    assert done.returncode == 0, done.stdout + done.stderr
    assert "No findings." in done.stdout


def test_source_errors_exit_three_and_are_named(lab: Lab, run_cli) -> None:  # type: ignore[no-untyped-def]
    lab.localagent_config.write_text("{ not json")
    done = run_cli("--config", str(lab.config_file), "status", "--format", "json")
    assert done.returncode == 3, "could not collect: told apart from findings (1)"
    bad = next(s for s in json.loads(done.stdout)["sources"] if s["source"] == "localagent")
    assert bad["reason"] == "parse_error" and "localagent-config.json: invalid JSON" in bad["message"]


def test_check_config(lab: Lab, tmp_path: Path, run_cli) -> None:  # type: ignore[no-untyped-def]
    done = run_cli("--config", str(lab.config_file), "check-config", "--format", "json")
    assert done.returncode == 0, done.stderr
    sources = {s["source"]: s for s in json.loads(done.stdout)["sources"]}
    assert sources["certfolder"]["targets"][0] == "AOS1"
    broken = tmp_path / "broken.yaml"
    broken.write_text("sources:\n  certfolder:\n    interval_seconds: soon\n")
    done = run_cli("--config", str(broken), "check-config")
    assert done.returncode == 2
    assert str(broken) in done.stderr and "sources.certfolder.interval_seconds" in done.stderr
    missing = tmp_path / "missing.yaml"
    missing.write_text("sources:\n  clusterconfig: {path: nowhere.json}\n")
    done = run_cli("--config", str(missing), "check-config")
    assert done.returncode == 2 and "sources.clusterconfig.path" in done.stderr
    assert run_cli("--config", str(tmp_path / "absent.yaml"), "status").returncode == 2


def _wait_for_metrics(url: str, needle: bytes, timeout: float = 60) -> bytes:
    deadline = time.monotonic() + timeout
    last = b""
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(url, timeout=5) as response:
                last = response.read()
                if needle in last:
                    return last
        except OSError:
            pass
        time.sleep(0.3)
    raise AssertionError(f"{needle!r} never appeared at {url}; last body {last[:300]!r}")


def _spawn(*args: str) -> subprocess.Popen[bytes]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("CERTMON_")}
    env["PYTHONPATH"] = str(ROOT)
    return subprocess.Popen(
        [sys.executable, "-m", "daemon", *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env, cwd=ROOT
    )


def test_demo_serves_metrics_that_promtool_accepts_and_stops_on_sigterm(tmp_path: Path) -> None:
    port = free_port()
    process = _spawn("demo", "--dir", str(tmp_path / "demo"), "--port", str(port))
    try:
        body = _wait_for_metrics(f"http://127.0.0.1:{port}/metrics", b'source="winrm"')
        promtool = shutil.which("promtool")
        if promtool:
            done = subprocess.run([promtool, "check", "metrics"], input=body, capture_output=True, check=False)
            assert done.returncode == 0 and done.stdout.strip() == b"", done.stdout + done.stderr
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=30) == 0
        out = process.stdout.read().decode() if process.stdout else ""
        assert f"http://127.0.0.1:{port}/metrics" in out
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()


def test_run_stops_cleanly_on_ctrl_c(lab: Lab, tmp_path: Path) -> None:
    port = free_port()
    config = lab.config_file.read_text().replace("port: 0", f"port: {port}")
    lab.config_file.write_text(config)
    process = _spawn("--config", str(lab.config_file), "run")
    try:
        _wait_for_metrics(f"http://127.0.0.1:{port}/metrics", b"certmon_source_up")
        process.send_signal(signal.SIGINT)
        assert process.wait(timeout=30) == 0
        log = process.stderr.read().decode() if process.stderr else ""
        assert "stopping (signal 2)" in log
        assert lab.password not in log
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()


@pytest.mark.parametrize("stage", ["before", "staged", "removed-early"])
def test_demo_generates_each_stage(tmp_path: Path, run_cli, stage: str) -> None:  # type: ignore[no-untyped-def]
    # removed-early: the lab is walked there on its running peers, then everything stops. --no-run
    # opens no listener: the port it is given is taken, and that does not matter.
    with socket.create_server(("127.0.0.1", 0)) as taken:
        port = str(taken.getsockname()[1])
        done = run_cli(
            "demo", "--dir", str(tmp_path / stage), "--stage", stage, "--no-run", "--speed", "600", "--port", port
        )
    assert done.returncode == 0, done.stderr
    assert (tmp_path / stage / "certmon.yaml").exists()
    assert (tmp_path / stage / "InfrastructureOld").exists() == (stage != "before")
    assert ("stage removed-early reached" in done.stdout) == (stage == "removed-early")
    assert not (tmp_path / stage / "demo.json").exists()


def test_a_reader_that_goes_away_ends_the_command_quietly(lab: Lab) -> None:
    """`certmon inspect ... | head -1`: no BrokenPipe traceback, the usual exit code 1 of a cut pipeline."""
    files = sorted(str(p) for p in lab.root.rglob("*.cer"))
    assert files, "the lab has certificate files"
    read, write = os.pipe()
    os.close(read)  # the reader is gone before the command writes anything
    env = {k: v for k, v in os.environ.items() if not k.startswith("CERTMON_")} | {"PYTHONPATH": str(ROOT)}
    with os.fdopen(write, "wb") as stdout:
        done = subprocess.run(
            [sys.executable, "-m", "daemon", "inspect", *files],
            stdout=stdout,
            stderr=subprocess.PIPE,
            env=env,
            cwd=ROOT,
            timeout=120,
            check=False,
        )
    assert done.returncode == 1
    assert b"Traceback" not in done.stderr and b"BrokenPipe" not in done.stderr, done.stderr.decode()


def _imported_modules(stderr: str) -> list[str]:
    """Module names from Python's -X importtime profile (PYTHONPROFILEIMPORTTIME) on stderr."""
    return [line.rsplit("|", 1)[1].strip() for line in stderr.splitlines() if line.startswith("import time:")]


@pytest.mark.parametrize("args", [("--help",), ("check-config",), ("check-config", "--format", "json")])
def test_certmon_commands_never_import_the_simulator(run_cli, tmp_path: Path, args: tuple[str, ...]) -> None:  # type: ignore[no-untyped-def]
    config = tmp_path / "certmon.yaml"
    (tmp_path / "ClusterConfig.json").write_text("{}")
    config.write_text(
        f"environment: prod\ndata_dir: {tmp_path / 'data'}\nsources:\n  clusterconfig: {{path: ClusterConfig.json}}\n"
    )
    done = run_cli("--config", str(config), *args, env={"PYTHONPROFILEIMPORTTIME": "1", "COLUMNS": "200"})
    assert done.returncode == 0, done.stderr
    imported = _imported_modules(done.stderr)
    assert "daemon.cli" in imported
    if args[0] == "check-config":
        assert "daemon.settings" in imported and "daemon.sources.registry" in imported
    assert [m for m in imported if m.split(".")[0] == "simulator"] == []
    if args == ("--help",):
        # The demo is listed from its distribution's entry point, without importing it.
        assert "demo" in done.stdout and "(certmon-simulator)" in done.stdout


def test_the_daemon_modules_never_import_the_simulator() -> None:
    # What `certmon run` loads: the daemon, its scheduler, the API and status page, the remediation wiring.
    modules = "daemon.app, daemon.api, daemon.scheduler, daemon.status, daemon.remediate, daemon.report, daemon.cli"
    code = f"import {modules}; daemon.cli.build_parser(); daemon.app.Daemon"
    env = {k: v for k, v in os.environ.items() if not k.startswith("CERTMON_")}
    env.update(PYTHONPATH=str(ROOT), PYTHONPROFILEIMPORTTIME="1")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, cwd=ROOT, check=False)
    assert done.returncode == 0, done.stderr
    imported = _imported_modules(done.stderr)
    assert "daemon.app" in imported and "daemon.api" in imported
    assert [m for m in imported if m.split(".")[0] == "simulator"] == []


def test_unknown_arguments_of_a_builtin_command_are_usage_errors(run_cli) -> None:  # type: ignore[no-untyped-def]
    done = run_cli("check-config", "--bogus")
    assert done.returncode == 2
    assert "unrecognized arguments: --bogus" in done.stderr
