"""Audit records: JSON lines, redaction, several sinks, appends from several processes."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

import pytest

from collectors.secrets import MASK, register_secret
from remediations.audit import AuditError, Auditor, AuditRecord, JsonlAuditLog, scrub

ROOT = Path(__file__).resolve().parents[2]
AT = datetime(2026, 11, 27, 12, 0, tzinfo=UTC)


def _record(outcome: str = "applied", **extra: object) -> AuditRecord:
    fields: dict[str, object] = {
        "run_id": "r1",
        "at": AT,
        "actor": "alice",
        "host": "mgmt1",
        "environment": "prod",
        "remediation": "localagent-config-update",
        "target": "C:/LocalAgent/localagent-config.json",
        "mode": "apply",
        "outcome": outcome,
    }
    fields.update(extra)
    return AuditRecord(**fields)  # type: ignore[arg-type]


def test_records_are_appended_as_json_lines(tmp_path: Path) -> None:
    log = JsonlAuditLog(tmp_path / "audit.jsonl")
    log(_record("started"))
    log(_record("applied", backups=("b/localagent-config.json",), plan={"digest": "abc"}))
    lines = (tmp_path / "audit.jsonl").read_text(encoding="utf-8").splitlines()
    assert len(lines) == 2
    first, second = (json.loads(line) for line in lines)
    assert first["outcome"] == "started" and first["at"] == "2026-11-27T12:00:00+00:00"
    assert second["backups"] == ["b/localagent-config.json"] and second["plan"] == {"digest": "abc"}
    assert {"run_id", "actor", "host", "environment", "remediation", "target", "mode", "message"} <= set(second)


def test_a_torn_last_line_is_skipped_then_cut(tmp_path: Path) -> None:
    log = JsonlAuditLog(tmp_path / "audit.jsonl")
    log(_record())
    with open(tmp_path / "audit.jsonl", "a", encoding="utf-8") as handle:
        handle.write('{"run_id": "r2", "outc')
    assert [e["run_id"] for e in log.entries()] == ["r1"]
    log(_record(run_id="r3"))
    assert [e["run_id"] for e in log.entries()] == ["r1", "r3"]
    # The fragment is gone: every line of the file is a whole record (a crash test found it kept).
    lines = (tmp_path / "audit.jsonl").read_bytes().split(b"\n")
    assert lines[-1] == b"" and [json.loads(line)["run_id"] for line in lines[:-1]] == ["r1", "r3"]


def test_a_torn_first_and_only_line_longer_than_a_block_is_cut(tmp_path: Path) -> None:
    path = tmp_path / "audit.jsonl"
    path.write_bytes(b'{"run_id": "r0", "plan": "' + b"x" * 200_000)
    log = JsonlAuditLog(path)
    log(_record())
    assert [json.loads(line)["run_id"] for line in path.read_bytes().splitlines()] == ["r1"]


def test_registered_secrets_are_masked_everywhere(tmp_path: Path) -> None:
    secret = "hunter2-but-longer"
    register_secret(secret)
    record = _record(message=f"login with {secret} failed", plan={"diff": f"-  pwd: {secret}\n", secret: 1})
    assert secret not in json.dumps(record.to_dict())
    assert scrub({"k": [f"x{secret}x"]}) == {"k": [f"x{MASK}x"]}
    log = JsonlAuditLog(tmp_path / "audit.jsonl")
    log(record)
    assert secret not in (tmp_path / "audit.jsonl").read_text(encoding="utf-8")


def test_one_failing_sink_does_not_silence_the_others(tmp_path: Path) -> None:
    good = JsonlAuditLog(tmp_path / "good.jsonl")
    folder = tmp_path / "not-a-file"
    folder.mkdir()
    auditor = Auditor([JsonlAuditLog(folder), good])
    failures = auditor.record(_record())
    assert len(failures) == 1 and "IsADirectoryError" in failures[0]
    assert len(good.entries()) == 1
    with pytest.raises(AuditError, match="cannot write the audit record"):
        auditor.record(_record(), required=True)
    assert len(good.entries()) == 2


WRITER = """
import sys
from datetime import UTC, datetime
from pathlib import Path
from remediations.audit import AuditRecord, JsonlAuditLog
log = JsonlAuditLog(Path(sys.argv[1]))
for index in range(150):
    log(AuditRecord(f"{sys.argv[2]}-{index}", datetime.now(UTC), "a", "h", "e", "r", "t", "apply", "applied",
                    message="x" * 5000))
"""


def test_appends_from_concurrent_processes_never_interleave(tmp_path: Path) -> None:
    path = tmp_path / "audit.jsonl"
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    writers = [subprocess.Popen([sys.executable, "-c", WRITER, str(path), name], env=env) for name in ("a", "b")]
    assert [w.wait(60) for w in writers] == [0, 0]
    entries = JsonlAuditLog(path).entries()
    assert len(path.read_text(encoding="utf-8").splitlines()) == 300
    assert sorted(e["run_id"] for e in entries) == sorted(f"{n}-{i}" for n in ("a", "b") for i in range(150))
