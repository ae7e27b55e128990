"""Plans say exactly what would change, in text and JSON, with a stable digest."""

from __future__ import annotations

from pathlib import Path

from remediations.plan import (
    FileChange,
    HttpRequest,
    Plan,
    RemoteCommand,
    SqlChange,
    SqlStatement,
    ValueChange,
    follow_up_text,
)

BEFORE = b'\xef\xbb\xbf{\r\n  "a": "old",\r\n  "b": 1\r\n}\r\n'
AFTER = BEFORE.replace(b'"old"', b'"new"')


def _file_change(**extra: object) -> FileChange:
    return FileChange(Path("/cfg/x.json"), BEFORE, AFTER, (ValueChange("a", "old", "new"),), **extra)  # type: ignore[arg-type]


def test_file_change_shows_diff_values_and_the_kept_format() -> None:
    change = _file_change()
    text = change.render()
    assert text.startswith("file /cfg/x.json (UTF-8 BOM kept, CRLF line endings kept)\n  a: old -> new\n")
    assert '-  "a": "old",\n+  "a": "new",\n' in text
    assert "\r" not in change.diff()
    data = change.to_dict()
    assert data["kind"] == "file" and data["target"] == "/cfg/x.json"
    assert len(data["before_sha256"]) == 64 and data["before_sha256"] != data["after_sha256"]
    assert "after" not in data and "before" not in data  # never the raw bytes


def test_content_can_be_withheld() -> None:
    change = _file_change(show_diff=False)
    assert "old" not in change.diff() and "content not shown" in change.diff()
    assert '"a"' not in change.render()


def test_sql_and_remote_changes_render() -> None:
    sql = SqlChange(
        "AXDB",
        (
            SqlStatement(
                "UPDATE SYSFLIGHTING SET ENABLED = 1 WHERE FLIGHTNAME = ?", ("EnableEncryptedDataCrawlerRotationTask",)
            ),
        ),
        ({"FLIGHTNAME": "EnableEncryptedDataCrawlerRotationTask", "ENABLED": 0},),
    )
    assert sql.render() == (
        "database AXDB (one transaction)\n"
        "  UPDATE SYSFLIGHTING SET ENABLED = 1 WHERE FLIGHTNAME = ?  -- parameters "
        "['EnableEncryptedDataCrawlerRotationTask']\n"
        "  rows now:\n    {'FLIGHTNAME': 'EnableEncryptedDataCrawlerRotationTask', 'ENABLED': 0}\n"
    )
    assert sql.to_dict()["rows"] == [{"FLIGHTNAME": "EnableEncryptedDataCrawlerRotationTask", "ENABLED": 0}]
    remote = RemoteCommand("AOS1", ".\\Configure-CredentialsJson.ps1 -Action Rotate")
    assert remote.render() == "host AOS1 (powershell)\n  .\\Configure-CredentialsJson.ps1 -Action Rotate\n"
    plan = Plan("x", (sql, remote))
    assert plan.target == "AXDB, AOS1"
    assert plan.files() == []


def test_digest_depends_on_the_substance_only() -> None:
    one = Plan("localagent-config-update", (_file_change(),), follow_up=("reinstall",))
    two = Plan("localagent-config-update", (_file_change(),))
    other = Plan("localagent-config-update", (FileChange(Path("/cfg/x.json"), BEFORE, BEFORE + b" "),))
    assert one.digest == two.digest != other.digest
    assert len(one.digest) == 16


def test_empty_plan_says_why() -> None:
    plan = Plan("x", (), reason="already done")
    assert plan.empty
    assert plan.render() == "nothing to change: already done\n"
    assert plan.to_dict()["changes"] == []
    assert follow_up_text(["one", "two"]) == "  1. one\n  2. two\n"


def test_http_request_renders_its_call_and_summarised_body() -> None:
    request = HttpRequest(
        "POST",
        "https://sf:19080/$/UpdateUpgrade?api-version=6.0",
        "update the running upgrade's replica-set check timeout",
        (("ReplicaSetCheckTimeoutInMilliseconds", "30000"),),
    )
    assert request.render() == (
        "POST https://sf:19080/$/UpdateUpgrade?api-version=6.0\n"
        "  update the running upgrade's replica-set check timeout\n"
        "  ReplicaSetCheckTimeoutInMilliseconds: 30000\n"
    )
    assert request.to_dict() == {
        "kind": "http",
        "target": "https://sf:19080/$/UpdateUpgrade?api-version=6.0",
        "method": "POST",
        "description": "update the running upgrade's replica-set check timeout",
        "fields": {"ReplicaSetCheckTimeoutInMilliseconds": "30000"},
    }
    plan = Plan("sf-replica-check-timeout", (request,))
    assert plan.files() == [] and plan.target == request.url
    assert plan.digest != Plan("sf-replica-check-timeout", (HttpRequest("POST", request.url, "other"),)).digest
