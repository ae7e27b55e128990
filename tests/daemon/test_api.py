"""The remediation API over real HTTP: status, list, plan, apply, its refusals, and the audit of every call."""

from __future__ import annotations

import hashlib
import logging
import queue
import threading
from datetime import UTC, datetime
from pathlib import Path

import pytest
import yaml

from daemon.app import Daemon
from daemon.payloads import status_payload
from daemon.settings import ConfigError, load_settings
from daemon.state import StateStore
from remediations.lock import EnvironmentLock
from simulator.lab import Lab
from tests.daemon.apikit import (
    NAME,
    TOKEN,
    TOKEN_FILE,
    Reply,
    api_records,
    audit_file,
    bearer,
    call,
    configure_api,
    running,
    write_token,
)

APPLY = f"/api/remediations/{NAME}/apply"
PLAN = f"/api/remediations/{NAME}/plan"


def _sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.fixture
def api_lab(cli_lab: Lab) -> Lab:
    """The small CLI lab with an API token configured.

    The lab has no Service Fabric gateway, so the LocalAgent update these tests drive through the
    API runs with the operator's configured override (rules.agent_updates_without_cluster_evidence).
    """
    write_token(cli_lab)
    configure_api(cli_lab, token_file=TOKEN_FILE)
    config = yaml.safe_load(cli_lab.config_file.read_text(encoding="utf-8"))
    config.setdefault("rules", {})["agent_updates_without_cluster_evidence"] = True
    cli_lab.config_file.write_text(yaml.safe_dump(config, sort_keys=False), encoding="utf-8")
    return cli_lab


def _store_audit(lab: Lab) -> list[dict]:  # type: ignore[type-arg]
    store = StateStore(lab.data_dir)
    try:
        return list(reversed(store.audit_entries(1000)))
    finally:
        store.close()


def test_status_is_the_status_document_with_certificates_and_the_matrix(api_lab: Lab, now: datetime) -> None:
    with running(api_lab, now) as daemon:
        assert daemon.api is not None and daemon.http is not None
        assert daemon.api.url != daemon.http.url, "the API has a listener of its own"
        reply = call(daemon.api.url + "/api/status")
        expected = status_payload(daemon.view)
    assert reply.status == 200 and reply.headers["Content-Type"] == "application/json"
    document = reply.json()
    for key in ("environment", "collected_at", "sources", "checklist", "old_certificates", "findings"):
        assert document[key] == expected[key], key
    steps = {s["step"]: s["status"] for s in document["checklist"]}
    assert steps["localagent-updated"] == "pending" and len(steps) == 15
    new_sf = api_lab.cert("ServiceFabric", "new").thumbprint
    assert any(c["thumbprint"] == new_sf and c["node"] == "ORCH1" for c in document["certificates"])
    orch1 = next(row for row in document["matrix"]["nodes"] if row["node"] == "ORCH1")
    cell = orch1["cells"]["ServiceFabric"]
    assert cell["needed"] and [c["generation"] for c in cell["certificates"]] == ["new"]
    assert document["summary"]["steps"]["total"] == 15
    [record] = api_records(api_lab)
    assert (record["outcome"], record["detail"]["path"], record["detail"]["status"]) == ("ok", "/api/status", 200)
    assert record["actor"] == "api:anonymous@127.0.0.1"


def test_list_says_what_applies(api_lab: Lab, now: datetime) -> None:
    with running(api_lab, now) as daemon:
        assert daemon.api is not None
        reply = call(daemon.api.url + "/api/remediations")
    assert reply.status == 200
    entries = {e["name"]: e for e in reply.json()["remediations"]}
    assert entries[NAME]["applies"] is True and len(entries[NAME]["plan_digest"]) == 16
    assert entries["sf-stage-rotation"]["applies"] is False
    assert [r["detail"]["path"] for r in api_records(api_lab)] == ["/api/remediations"]


def test_plan_returns_the_diff_and_changes_nothing(api_lab: Lab, now: datetime) -> None:
    before = _sha(api_lab.localagent_config)
    with running(api_lab, now) as daemon:
        assert daemon.api is not None
        reply = call(daemon.api.url + PLAN, "POST")
    assert reply.status == 200, reply.body
    result = reply.json()
    assert result["outcome"] == "planned" and result["mode"] == "dry-run"
    change = result["plan"]["changes"][0]
    new_server = api_lab.cert("ServiceFabric", "new").thumbprint
    assert f'+            "serverCertThumbprint": "{new_server}",' in change["diff"]
    assert change["before_sha256"] == before == _sha(api_lab.localagent_config)
    modes = [(r["mode"], r["outcome"], r["actor"]) for r in audit_file(api_lab)]
    assert modes == [
        ("dry-run", "planned", "api:anonymous@127.0.0.1"),
        ("api", "planned", "api:anonymous@127.0.0.1"),
    ]
    assert api_records(api_lab)[0]["run_id"] == result["run_id"]


def test_apply_refuses_a_missing_or_wrong_token_and_audits_both(
    api_lab: Lab, now: datetime, caplog: pytest.LogCaptureFixture
) -> None:
    before = _sha(api_lab.localagent_config)
    caplog.set_level(logging.DEBUG)
    with running(api_lab, now) as daemon:
        assert daemon.api is not None
        missing = call(daemon.api.url + APPLY, "POST")
        wrong = call(daemon.api.url + APPLY, "POST", headers=bearer("x" + TOKEN[1:]))
        basic = call(daemon.api.url + APPLY, "POST", headers={"Authorization": "Basic dXNlcjpwYXNz"})
    assert missing.status == 401 and missing.headers["WWW-Authenticate"] == 'Bearer realm="certmon"'
    assert "apply needs a bearer token" in missing.json()["error"]
    assert wrong.status == 401 and 'error="invalid_token"' in wrong.headers["WWW-Authenticate"]
    assert wrong.json()["error"] == "wrong bearer token"
    assert basic.status == 401
    assert _sha(api_lab.localagent_config) == before
    records = api_records(api_lab)
    assert [(r["outcome"], r["detail"]["status"], r["detail"]["auth"]) for r in records] == [
        ("unauthorized", 401, "none"),
        ("unauthorized", 401, "token"),
        ("unauthorized", 401, "none"),
    ]
    assert all(r["remediation"] == NAME and r["detail"]["path"] == APPLY for r in records)
    stored = [(e["mode"], e["outcome"]) for e in _store_audit(api_lab)]
    assert stored == [("api", "unauthorized")] * 3
    # The token appears nowhere: not in the audit file, the state store, or the log.
    written = [p for p in api_lab.data_dir.rglob("*") if p.is_file()]
    assert any(p.name == "audit.jsonl" for p in written) and any(p.name.startswith("certmon.db") for p in written)
    assert not [p for p in written if TOKEN.encode() in p.read_bytes()]
    assert TOKEN not in caplog.text


def test_apply_with_the_token_changes_the_file_and_audits(api_lab: Lab, now: datetime) -> None:
    with running(api_lab, now) as daemon:
        assert daemon.api is not None
        plan = call(daemon.api.url + PLAN, "POST").json()["plan"]
        applied = call(daemon.api.url + APPLY, "POST", {"expect_plan": plan["digest"]}, bearer())
        again = call(daemon.api.url + APPLY, "POST", headers=bearer())
        status = call(daemon.api.url + "/api/status").json()
    assert applied.status == 200, applied.body
    result = applied.json()
    assert result["outcome"] == "applied" and result["cleared"] is True
    assert "re-collected localagent: the findings cleared" in result["message"]
    assert _sha(api_lab.localagent_config) == plan["changes"][0]["after_sha256"]
    assert _sha(Path(result["backups"][0])) == plan["changes"][0]["before_sha256"]
    assert again.status == 200 and again.json()["outcome"] == "nothing-to-do"
    # The re-collection published a new view: the status already shows the step done.
    assert {s["step"]: s["status"] for s in status["checklist"]}["localagent-updated"] == "done"
    engine = [(r["mode"], r["outcome"], r["actor"]) for r in audit_file(api_lab) if r["mode"] == "apply"]
    assert engine == [
        ("apply", "started", "api:token@127.0.0.1"),
        ("apply", "applied", "api:token@127.0.0.1"),
        ("apply", "nothing-to-do", "api:token@127.0.0.1"),
    ]
    api = [(r["outcome"], r["detail"]["status"], r["detail"]["auth"]) for r in api_records(api_lab)]
    assert api == [
        ("planned", 200, "none"),
        ("applied", 200, "token"),
        ("nothing-to-do", 200, "token"),
        ("ok", 200, "none"),
    ]
    assert [(e["mode"], e["outcome"]) for e in _store_audit(api_lab) if e["mode"] == "api"] == [
        ("api", "planned"),
        ("api", "applied"),
        ("api", "nothing-to-do"),
        ("api", "ok"),
    ]


def test_a_changed_plan_is_refused_with_409(api_lab: Lab, now: datetime) -> None:
    before = _sha(api_lab.localagent_config)
    with running(api_lab, now) as daemon:
        assert daemon.api is not None
        reply = call(daemon.api.url + APPLY, "POST", {"expect_plan": "0123456789abcdef"}, bearer())
    assert reply.status == 409
    assert reply.json()["outcome"] == "refused" and "the plan changed since it was shown" in reply.json()["message"]
    assert _sha(api_lab.localagent_config) == before


def test_apply_is_disabled_without_a_credential(cli_lab: Lab, now: datetime) -> None:
    with running(cli_lab, now) as daemon:
        assert daemon.api is not None
        reply = call(daemon.api.url + APPLY, "POST", headers=bearer())
        plain = call(daemon.api.url + APPLY, "POST")
    assert reply.status == 403 and "api.token_file is not set" in reply.json()["error"]
    assert plain.status == 403 and "applying through the API is disabled" in plain.json()["error"]
    assert [r["outcome"] for r in api_records(cli_lab)] == ["forbidden", "forbidden"]


@pytest.mark.parametrize(
    ("path", "body", "headers", "status", "message"),
    [
        ("/api/remediations/nope/apply", {}, {}, 404, "unknown remediation 'nope'"),
        (APPLY, b"{not json", {"Content-Type": "application/json"}, 400, "the body is not JSON"),
        (APPLY, {"force": True}, {}, 400, "unknown field 'force'"),
        (APPLY, {"expect_plan": 3}, {}, 400, "expect_plan must be the plan's digest"),
        (APPLY, b"expect_plan=x", {"Content-Type": "application/x-www-form-urlencoded"}, 415, "application/json"),
        (APPLY, {}, {"Origin": "https://evil.example"}, 403, "cross-site request from https://evil.example"),
        (PLAN, {"x": 1}, {}, 400, "unknown field 'x'"),
    ],
)
def test_bad_requests_are_refused_and_audited(
    api_lab: Lab, now: datetime, path: str, body: object, headers: dict[str, str], status: int, message: str
) -> None:
    before = _sha(api_lab.localagent_config)
    with running(api_lab, now) as daemon:
        assert daemon.api is not None
        reply = call(daemon.api.url + path, "POST", body, {**bearer(), **headers})
    assert reply.status == status, reply.body
    assert message in reply.json()["error"]
    assert _sha(api_lab.localagent_config) == before
    [record] = api_records(api_lab)
    assert record["detail"]["status"] == status and message in record["message"]


def test_unknown_paths_and_methods(api_lab: Lab, now: datetime) -> None:
    with running(api_lab, now) as daemon:
        assert daemon.api is not None
        assert call(daemon.api.url + "/api/nothing").status == 404
        assert call(daemon.api.url + APPLY).status == 405
        assert call(daemon.api.url + "/metrics").status == 404, "metrics stay on the exporter's listener"
        assert call(daemon.api.url + "/healthz").json() == {"status": "ok", "remediations_in_flight": 0}


def test_concurrent_applies_one_waits_for_the_other(api_lab: Lab, now: datetime) -> None:
    configure_api(api_lab, lock_wait_seconds=60)
    with running(api_lab, now) as daemon:
        assert daemon.api is not None
        replies: list[Reply] = []
        threads = [
            threading.Thread(target=lambda: replies.append(call(daemon.api.url + APPLY, "POST", headers=bearer())))  # type: ignore[union-attr]
            for _ in range(2)
        ]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=120)
    assert sorted(r.json()["outcome"] for r in replies) == ["applied", "nothing-to-do"]
    assert [r.status for r in replies] == [200, 200]


def test_a_busy_environment_is_refused_naming_the_holder(api_lab: Lab, now: datetime) -> None:
    configure_api(api_lab, lock_wait_seconds=0)
    before = _sha(api_lab.localagent_config)
    holder = EnvironmentLock(api_lab.data_dir, "demo", timeout=5)
    with running(api_lab, now) as daemon:
        assert daemon.api is not None
        holder.acquire(remediation="sf-stage-rotation", actor="alice", now=datetime.now(UTC))
        try:
            reply = call(daemon.api.url + APPLY, "POST", headers=bearer())
        finally:
            holder.release()
    assert reply.status == 409
    assert "another remediation is running: sf-stage-rotation by alice@" in reply.json()["message"]
    assert _sha(api_lab.localagent_config) == before


def test_scrapes_and_the_page_answer_while_an_apply_waits(api_lab: Lab, now: datetime) -> None:
    configure_api(api_lab, lock_wait_seconds=120)
    holder = EnvironmentLock(api_lab.data_dir, "demo", timeout=5)
    with running(api_lab, now) as daemon:
        assert daemon.api is not None and daemon.http is not None
        holder.acquire(remediation="sf-stage-rotation", actor="alice", now=datetime.now(UTC))
        done: queue.Queue[Reply] = queue.Queue()
        thread = threading.Thread(target=lambda: done.put(call(daemon.api.url + APPLY, "POST", headers=bearer())))  # type: ignore[union-attr]
        thread.start()
        try:
            metrics = call(daemon.http.url + "/metrics")
            page = call(daemon.api.url + "/")
            status = call(daemon.api.url + "/api/status")
            assert done.empty(), "the apply is still waiting for the lock"
        finally:
            holder.release()
        applied = done.get(timeout=120)
    assert metrics.status == 200 and b"certmon_finding" in metrics.body
    assert page.status == 200 and status.status == 200
    assert applied.json()["outcome"] == "applied"


def test_a_full_worker_queue_answers_503(api_lab: Lab, now: datetime) -> None:
    configure_api(api_lab, workers=1, lock_wait_seconds=120)
    holder = EnvironmentLock(api_lab.data_dir, "demo", timeout=5)
    with running(api_lab, now) as daemon:
        assert daemon.api is not None
        holder.acquire(remediation="sf-stage-rotation", actor="alice", now=datetime.now(UTC))
        answers: queue.Queue[Reply] = queue.Queue()
        # One worker and four queued: the sixth request finds no room and is answered at once.
        threads = [
            threading.Thread(target=lambda: answers.put(call(daemon.api.url + APPLY, "POST", headers=bearer())))  # type: ignore[union-attr]
            for _ in range(6)
        ]
        for thread in threads:
            thread.start()
        try:
            first = answers.get(timeout=60)
        finally:
            holder.release()
        rest = [answers.get(timeout=120) for _ in range(5)]
    assert first.status == 503 and first.headers["Retry-After"] == "5"
    assert "every remediation worker is busy" in first.json()["error"]
    assert sorted(r.json()["outcome"] for r in rest) == ["applied"] + ["nothing-to-do"] * 4
    assert [r["outcome"] for r in api_records(api_lab)].count("busy") == 1


def test_stop_lets_a_running_apply_finish_and_be_audited(api_lab: Lab, now: datetime) -> None:
    configure_api(api_lab, lock_wait_seconds=120)
    holder = EnvironmentLock(api_lab.data_dir, "demo", timeout=5)
    daemon = Daemon(load_settings(api_lab.config_file), clock=lambda: now)
    daemon.collect_once()
    daemon.start(schedule=False)
    assert daemon.api is not None
    holder.acquire(remediation="sf-stage-rotation", actor="alice", now=datetime.now(UTC))
    done: queue.Queue[Reply] = queue.Queue()
    url = daemon.api.url
    client = threading.Thread(target=lambda: done.put(call(url + APPLY, "POST", headers=bearer())))
    client.start()
    # Wait until the apply holds a worker (nothing is audited before it has the lock).
    while daemon.api.in_flight == 0:
        threading.Event().wait(0.05)
    stopper = threading.Thread(target=daemon.stop)
    stopper.start()
    holder.release()
    stopper.join(timeout=120)
    assert not stopper.is_alive()
    outcomes = [(e["mode"], e["outcome"]) for e in _store_audit(api_lab)]
    assert ("apply", "applied") in outcomes, "the apply finished and reached the store before it closed"
    assert ("api", "applied") in outcomes, "so did the API's record of the call"
    client.join(timeout=60)
    assert done.get(timeout=1).json()["outcome"] == "applied"


def test_the_token_file_is_reread_when_it_changes(api_lab: Lab, now: datetime) -> None:
    with running(api_lab, now) as daemon:
        assert daemon.api is not None
        url = daemon.api.url + "/api/remediations/nope/apply"  # authorised calls end in 404
        assert call(url, "POST", headers=bearer()).status == 404
        fresh = "rotated-" + "Pq4" * 8
        write_token(api_lab, fresh)
        assert call(url, "POST", headers=bearer()).status == 401
        assert call(url, "POST", headers=bearer(fresh)).status == 404


def test_a_short_token_is_a_configuration_error(api_lab: Lab, now: datetime) -> None:
    write_token(api_lab, "short")
    daemon = Daemon(load_settings(api_lab.config_file), clock=lambda: now)
    try:
        with pytest.raises(ConfigError, match=r"api.token_file: the token in .* is shorter than 16 characters"):
            daemon.start(schedule=False)
        assert daemon.http is None, "the exporter is not left listening"
    finally:
        daemon.stop()


def test_an_exporter_port_of_zero_gives_the_api_an_ephemeral_port(lab: Lab, now: datetime) -> None:
    settings = load_settings(lab.config_file)
    assert settings.exporter.port == 0 and settings.api.port is None
    assert settings.api.effective_port(9877) == 9878
    with running(lab, now) as daemon:
        assert daemon.api is not None and daemon.http is not None
        assert daemon.api.http is not None and daemon.api.http.port not in (0, daemon.http.port)


def test_the_token_may_come_from_the_environment(cli_lab: Lab, now: datetime, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CERTMON_API__TOKEN", TOKEN)
    monkeypatch.setenv("CERTMON_RULES__AGENT_UPDATES_WITHOUT_CLUSTER_EVIDENCE", "true")  # no gateway in this lab
    with running(cli_lab, now) as daemon:
        assert daemon.api is not None
        assert call(daemon.api.url + APPLY, "POST", headers=bearer("y" * 20)).status == 401
        applied = call(daemon.api.url + APPLY, "POST", headers=bearer())
    assert applied.status == 200 and applied.json()["outcome"] == "applied"


def test_a_token_in_the_configuration_file_is_refused(cli_lab: Lab) -> None:
    configure_api(cli_lab, token=TOKEN)
    with pytest.raises(ConfigError, match="api.token: secrets do not belong in the configuration file"):
        load_settings(cli_lab.config_file)
