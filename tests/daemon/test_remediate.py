"""`certmon remediate` as an operator runs it: list, dry run, apply, refusals, concurrent applies."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

import pytest

from daemon.state import StateStore
from remediations.audit import AUDIT_FILE, JsonlAuditLog
from remediations.lock import EnvironmentLock
from simulator.lab import Lab
from tests.remediations.conftest import tree_hashes

ROOT = Path(__file__).resolve().parents[2]
NAME = "localagent-config-update"
Cli = Callable[..., subprocess.CompletedProcess[str]]


def _sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _popen(lab: Lab, *args: str) -> subprocess.Popen[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("CERTMON_")}
    env["PYTHONPATH"] = str(ROOT)
    return subprocess.Popen(
        [sys.executable, "-m", "daemon", "-c", str(lab.config_file), "remediate", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
        cwd=ROOT,
    )


def test_list_says_what_applies_and_why(cli_lab: Lab, run_cli: Cli) -> None:
    table = run_cli("-c", str(cli_lab.config_file), "remediate")
    assert table.returncode == 0, table.stderr
    row = next(line for line in table.stdout.splitlines() if line.startswith(NAME))
    assert row.split()[1:4] == ["localagent-updated", "yes", "2"]
    assert "rewrite localagent-config.json: serverCertThumbprint, clientCertThumbprint" in row
    listed = run_cli("-c", str(cli_lab.config_file), "remediate", "--format", "json")
    entry = next(e for e in json.loads(listed.stdout)["remediations"] if e["name"] == NAME)
    assert entry["name"] == NAME and entry["applies"] is True and len(entry["plan_digest"]) == 16
    assert [f["rule"] for f in entry["findings"]] == ["agent-config-thumbprint-stale"] * 2


def test_dry_run_is_the_default_and_changes_nothing(cli_lab: Lab, run_cli: Cli) -> None:
    before = tree_hashes(cli_lab.root)
    shown = run_cli("-c", str(cli_lab.config_file), "remediate", NAME)
    assert shown.returncode == 0, shown.stderr
    assert "RESULT: planned: dry run: nothing was changed; run again with --apply to apply" in shown.stdout
    assert "LocalAgentCLI.exe Cleanup" in shown.stdout
    assert f'+            "serverCertThumbprint": "{cli_lab.cert("ServiceFabric", "new").thumbprint}",' in shown.stdout
    as_json = run_cli("-c", str(cli_lab.config_file), "remediate", NAME, "--format", "json")
    assert json.loads(as_json.stdout)["outcome"] == "planned"
    assert tree_hashes(cli_lab.root) == before
    assert [e["mode"] for e in JsonlAuditLog(cli_lab.data_dir / AUDIT_FILE).entries()] == ["dry-run", "dry-run"]


def test_apply_writes_the_planned_bytes_and_a_second_apply_is_a_no_op(cli_lab: Lab, run_cli: Cli) -> None:
    planned = json.loads(run_cli("-c", str(cli_lab.config_file), "remediate", NAME, "--format", "json").stdout)
    change = planned["plan"]["changes"][0]
    assert change["before_sha256"] == _sha(cli_lab.localagent_config)
    applied = run_cli(
        "-c", str(cli_lab.config_file), "remediate", NAME, "--apply", "--expect-plan", planned["plan"]["digest"]
    )
    assert applied.returncode == 0, applied.stdout + applied.stderr
    assert "RESULT: applied: applied and verified; re-collected localagent: the findings cleared" in applied.stdout
    assert _sha(cli_lab.localagent_config) == change["after_sha256"]
    backup = next(line[len("backup: ") :] for line in applied.stdout.splitlines() if line.startswith("backup: "))
    assert _sha(Path(backup)) == change["before_sha256"]

    again = run_cli("-c", str(cli_lab.config_file), "remediate", NAME, "--apply", "--format", "json")
    assert again.returncode == 0
    assert json.loads(again.stdout)["outcome"] == "nothing-to-do"
    assert _sha(cli_lab.localagent_config) == change["after_sha256"]

    store = StateStore(cli_lab.data_dir)
    try:
        stored = [(e["mode"], e["outcome"]) for e in reversed(store.audit_entries())]
    finally:
        store.close()
    assert stored == [("dry-run", "planned"), ("apply", "started"), ("apply", "applied"), ("apply", "nothing-to-do")]
    listed = run_cli("-c", str(cli_lab.config_file), "remediate", "--format", "json")
    entry = next(e for e in json.loads(listed.stdout)["remediations"] if e["name"] == NAME)
    assert entry["applies"] is False and entry["reason"].startswith("nothing to change")


def test_failed_precondition_refuses_with_its_reason_and_exit_1(cli_lab: Lab, run_cli: Cli) -> None:
    (cli_lab.root / "certs-small" / "ORCH1" / "ServiceFabricClient-new.pfx").unlink()
    before = _sha(cli_lab.localagent_config)
    for args in ((), ("--apply",)):
        result = run_cli("-c", str(cli_lab.config_file), "remediate", NAME, *args)
        assert result.returncode == 1, result.stdout
        assert "[FAIL] new certificates in the inventory: ServiceFabricClient certificate" in result.stdout
        assert "is not in the inventory of any node" in result.stdout
        assert "RESULT: refused: precondition failed: new certificates in the inventory" in result.stdout
    as_json = json.loads(run_cli("-c", str(cli_lab.config_file), "remediate", NAME, "--format", "json").stdout)
    assert [c["name"] for c in as_json["checks"] if not c["ok"]] == ["new certificates in the inventory"]
    assert _sha(cli_lab.localagent_config) == before


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("nope",), "unknown remediation 'nope'; known: localagent-config-update"),
        (("--apply",), "--apply needs the NAME of a remediation"),
        ((NAME, "--expect-plan", "abc"), "--expect-plan only makes sense with --apply"),
        ((NAME, "--wait", "-1"), "--wait must not be negative"),
    ],
)
def test_usage_errors_exit_2(cli_lab: Lab, run_cli: Cli, args: tuple[str, ...], message: str) -> None:
    result = run_cli("-c", str(cli_lab.config_file), "remediate", *args)
    assert result.returncode == 2
    assert message in result.stderr


def test_busy_environment_refuses_without_waiting(cli_lab: Lab, run_cli: Cli) -> None:
    holder = EnvironmentLock(cli_lab.data_dir, "demo", timeout=5)
    holder.acquire(remediation="sf-stage-rotation", actor="alice", now=datetime.now(UTC))
    try:
        result = run_cli("-c", str(cli_lab.config_file), "remediate", NAME, "--apply", "--wait", "0")
    finally:
        holder.release()
    assert result.returncode == 1
    assert "RESULT: refused: environment demo: another remediation is running: sf-stage-rotation by alice@" in (
        result.stdout
    )


def test_an_apply_waits_for_the_lock(cli_lab: Lab) -> None:
    holder = EnvironmentLock(cli_lab.data_dir, "demo", timeout=5)
    holder.acquire(remediation="sf-stage-rotation", actor="alice", now=datetime.now(UTC))
    proc = _popen(cli_lab, NAME, "--apply", "--wait", "60", "--format", "json")
    try:
        # While the lock is held the process can collect and plan but never write.
        with pytest.raises(subprocess.TimeoutExpired):
            proc.wait(timeout=3)
        assert "serverCertThumbprint" in cli_lab.localagent_config.read_text(encoding="utf-8")
        assert cli_lab.cert("ServiceFabric", "old").thumbprint in cli_lab.localagent_config.read_text(encoding="utf-8")
    finally:
        holder.release()
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 0, err
    assert json.loads(out)["outcome"] == "applied"


def test_concurrent_applies_never_corrupt(cli_lab: Lab, run_cli: Cli) -> None:
    original = cli_lab.localagent_config.read_bytes()
    planned = json.loads(run_cli("-c", str(cli_lab.config_file), "remediate", NAME, "--format", "json").stdout)
    after = planned["plan"]["changes"][0]["after_sha256"]
    for _round in range(3):
        cli_lab.localagent_config.write_bytes(original)
        procs = [_popen(cli_lab, NAME, "--apply", "--format", "json") for _ in range(2)]
        outputs = [p.communicate(timeout=120) for p in procs]
        assert [p.returncode for p in procs] == [0, 0], [err for _out, err in outputs]
        outcomes = sorted(json.loads(out)["outcome"] for out, _err in outputs)
        assert outcomes == ["applied", "nothing-to-do"]
        assert _sha(cli_lab.localagent_config) == after
    entries = JsonlAuditLog(cli_lab.data_dir / AUDIT_FILE).entries()
    assert [e["outcome"] for e in entries].count("applied") == 3
    assert [e["outcome"] for e in entries].count("nothing-to-do") == 3
