"""What an operator sees when the configuration or the machine is wrong: one clear line, a distinct exit code."""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable
from pathlib import Path

import pytest

from simulator.lab import Lab
from tests.conftest import ROOT, free_port

Cli = Callable[..., subprocess.CompletedProcess[str]]


def _config(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "certmon.yaml"
    path.write_text(f"data_dir: {tmp_path / 'data'}\n{text}", encoding="utf-8")
    return path


def test_no_configuration_is_refused_and_creates_nothing(tmp_path: Path, run_cli: Cli) -> None:
    for command in ("status", "check-config", "run"):
        done = run_cli(command, cwd=tmp_path)
        assert done.returncode == 2, (command, done.stderr)
        assert "no configuration" in done.stderr and "--config" in done.stderr
    assert list(tmp_path.iterdir()) == [], "no ./certmon-data or anything else"


def test_check_config_fails_without_an_enabled_source(tmp_path: Path, run_cli: Cli) -> None:
    done = run_cli("--config", str(_config(tmp_path, "environment: empty\n")), "check-config")
    assert done.returncode == 2 and "no source is enabled" in done.stderr


def test_a_near_miss_key_says_did_you_mean(tmp_path: Path, run_cli: Cli) -> None:
    config = _config(tmp_path, "sources:\n  clusterconfig:\n    pth: ClusterConfig.json\n")
    done = run_cli("--config", str(config), "check-config")
    assert done.returncode == 2
    assert "sources.clusterconfig.pth: Extra inputs are not permitted (did you mean path?)" in done.stderr


def test_a_misspelt_environment_variable_is_refused(lab: Lab, run_cli: Cli) -> None:
    done = run_cli("--config", str(lab.config_file), "check-config", env={"CERTMON_ENVIRONMNT": "prod"})
    assert done.returncode == 2
    assert "CERTMON_ENVIRONMNT (did you mean CERTMON_ENVIRONMENT?)" in done.stderr
    nested = run_cli(
        "--config", str(lab.config_file), "check-config", env={"CERTMON_SOURCES__CERTFOLDER__PASWORD_FILE": "x"}
    )
    assert nested.returncode == 2 and "did you mean CERTMON_SOURCES__CERTFOLDER__PASSWORD_FILE?" in nested.stderr
    unrelated = run_cli(
        "--config", str(lab.config_file), "check-config", "--format", "json", env={"CERTMON_XYZZY": "1"}
    )
    assert unrelated.returncode == 0, unrelated.stderr
    assert json.loads(unrelated.stdout)["ignored_environment"] == ["CERTMON_XYZZY"]


def test_a_missing_password_file_names_the_setting_and_the_path(lab: Lab, tmp_path: Path, run_cli: Cli) -> None:
    missing = tmp_path / "nowhere" / "pfx-password.txt"
    config = _config(tmp_path, f"sources:\n  certfolder:\n    path: {lab.certs_dir}\n    password_file: {missing}\n")
    done = run_cli("--config", str(config), "status")
    assert done.returncode == 2
    assert f"sources.certfolder.password_file: {missing}: No such file or directory" in done.stderr
    assert "Traceback" not in done.stderr and "FileNotFoundError" not in done.stderr


def test_a_sqlite_url_as_connection_string_names_database_file(tmp_path: Path, run_cli: Cli) -> None:
    config = _config(tmp_path, "sources:\n  sql:\n    axdb:\n      connection_string: 'sqlite:/x.sqlite'\n")
    done = run_cli("--config", str(config), "check-config")
    assert done.returncode == 2 and "use database_file: /x.sqlite" in done.stderr, done.stderr


def test_a_wrong_pfx_password_is_not_green(lab: Lab, run_cli: Cli) -> None:
    """Every source up but a folder unreadable: a finding and exit 3 (could not collect), never 0."""
    lab.password_file.write_text("wrong\n")
    done = run_cli("--config", str(lab.config_file), "status", "--format", "json")
    assert done.returncode == 3, done.stderr
    rules = {f["rule"] for f in json.loads(done.stdout)["findings"]}
    assert "source-problems" in rules


def test_the_exporter_port_in_use_is_one_line_and_exit_two(lab: Lab, run_cli: Cli) -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        done = run_cli("--config", str(lab.config_file), "--web.listen-address", f"127.0.0.1:{port}", "run")
    assert done.returncode == 2, done.stderr
    (line,) = [ln for ln in done.stderr.splitlines() if "certmon:" in ln]
    assert f"cannot listen on 127.0.0.1:{port}" in line and "Address already in use" in line
    assert "Traceback" not in done.stderr


def test_log_format_flags(lab: Lab, run_cli: Cli) -> None:
    lab.localagent_config.write_text("{")  # a failing source logs a warning
    done = run_cli("--config", str(lab.config_file), "--log.format", "json", "--log.level", "info", "status")
    lines = [json.loads(line) for line in done.stderr.splitlines() if line.startswith("{")]
    assert lines and all({"ts", "level", "logger", "msg"} <= set(entry) for entry in lines), done.stderr
    done = run_cli("--config", str(lab.config_file), "--log.format", "logfmt", "--log.level", "info", "status")
    assert any(line.startswith("ts=") and " level=" in line and ' msg="' in line for line in done.stderr.splitlines())
    eventlog = run_cli("--config", str(lab.config_file), "--log.eventlog", "status")
    assert eventlog.returncode == 2 and "Windows Event Log needs Windows and pywin32" in eventlog.stderr


def _wait_for(predicate: Callable[[], bool], what: str, timeout: float = 300) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.2)


def _metrics(port: int) -> str:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as response:
            return str(response.read().decode())
    except OSError:
        return ""


@pytest.mark.skipif(not hasattr(signal, "SIGHUP"), reason="SIGHUP is POSIX")
def test_sighup_reloads_and_an_invalid_configuration_keeps_the_running_one(lab: Lab, tmp_path: Path) -> None:
    port = free_port()
    broken = tmp_path / "localagent-config.json"
    broken.write_text("{")  # a finding (the source cannot read its file) that stays through the reload
    config = _config(
        tmp_path,
        f"environment: before\nsources:\n  clusterconfig: {{path: {lab.cluster_config}}}\n"
        f"  localagent: {{path: {broken}}}\n",
    )
    log = tmp_path / "certmon.log"
    env = {k: v for k, v in os.environ.items() if not k.startswith("CERTMON_")} | {"PYTHONPATH": str(ROOT)}
    with log.open("wb") as stderr:
        proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "daemon",
                "--config",
                str(config),
                "--web.listen-address",
                f"127.0.0.1:{port}",
                "run",
            ],
            stdout=subprocess.DEVNULL,
            stderr=stderr,
            env=env,
            cwd=tmp_path,
        )
    try:
        _wait_for(lambda: 'environment="before"' in _metrics(port), "the first configuration")
        _wait_for(lambda: "finding raised" in log.read_text(), "the first daemon's finding in the log")
        raised = [line for line in log.read_text().splitlines() if "finding raised" in line]
        config.write_text(config.read_text().replace("environment: before", "environment: after"))
        proc.send_signal(signal.SIGHUP)
        _wait_for(lambda: 'environment="after"' in _metrics(port), "the reloaded configuration")
        _wait_for(lambda: "configuration reloaded" in log.read_text(), "the reload in the log")
        for source in ("clusterconfig", "localagent"):  # the reloaded daemon has evaluated every source
            collected = re.compile(rf'certmon_source_up\{{[^}}]*environment="after"[^}}]*source="{source}"')
            _wait_for(lambda c=collected: bool(c.search(_metrics(port))), f"{source} collected after the reload")
        config.write_text("sources: [not, a, mapping\n")
        proc.send_signal(signal.SIGHUP)
        _wait_for(lambda: "configuration reload refused" in log.read_text(), "the refusal in the log")
        assert 'environment="after"' in _metrics(port), "the running configuration stays"
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=60) == 0
        text = log.read_text()
        # The reloaded daemon's evaluations carried the same findings: none is logged as raised again.
        assert [line for line in text.splitlines() if "finding raised" in line] == raised, text
        assert "finding cleared" not in text, text
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def test_collect_shows_done_of_total_on_a_terminal(lab: Lab) -> None:
    import pty

    leader, follower = pty.openpty()
    env = {k: v for k, v in os.environ.items() if not k.startswith("CERTMON_")} | {"PYTHONPATH": str(ROOT)}
    try:
        done = subprocess.run(
            [sys.executable, "-m", "daemon", "--config", str(lab.config_file), "collect", "--once"],
            stdout=subprocess.DEVNULL,
            stderr=follower,
            env=env,
            cwd=ROOT,
            timeout=300,
            check=False,
        )
        os.close(follower)
        follower = -1
        chunks = []
        while True:
            try:
                chunk = os.read(leader, 65536)
            except OSError:  # EIO: the writer closed its side
                break
            if not chunk:
                break
            chunks.append(chunk)
    finally:
        if follower != -1:
            os.close(follower)
        os.close(leader)
    text = b"".join(chunks).decode(errors="replace")
    counts = re.findall(r"collected (\d+)/(\d+) targets", text)
    assert done.returncode in (0, 1, 3) and counts, text[-500:]
    total = int(counts[-1][1])
    assert int(counts[-1][0]) == total and all(int(total_) == total for _, total_ in counts)
