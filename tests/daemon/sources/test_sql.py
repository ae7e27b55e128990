"""The sql, agentshare and credentials sources in the daemon: settings, registration, secrets, PostgreSQL end to end."""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from prometheus_client import generate_latest

from collectors.agentshare import AgentShareCollector
from collectors.credentials import CredentialsCollector
from collectors.sql import Probe, SqlCollector
from daemon.app import Daemon
from daemon.settings import ConfigError, load_settings
from daemon.sources.registry import build_collectors
from simulator.lab import Lab
from simulator.postgres import PgEnvironment
from tests.axdbkit import axdb_writer, seed_reencryption_enabled

ROOT = Path(__file__).resolve().parents[3]
PG_STRING = "Driver={PostgreSQL Unicode};Server=127.0.0.1;Port=5432;Database=axdb;Uid=certmon;"


def write_config(tmp_path: Path, sources: dict[str, object]) -> Path:
    path = tmp_path / "certmon.yaml"
    path.write_text(yaml.safe_dump({"data_dir": str(tmp_path / "data"), "sources": sources}), encoding="utf-8")
    return path


@pytest.mark.parametrize(
    ("sql", "message"),
    [
        ({"axdb": {}}, "set exactly one of connection_string and database_file"),
        ({"axdb": {"connection_string": PG_STRING, "database_file": "x.sqlite"}}, "set exactly one"),
        ({"axdb": {"connection_string": PG_STRING + "PWD=hunter22;"}}, "PWD= does not belong in the configuration"),
        ({"axdb": {"connection_string": "Driver={x;Server=y"}}, "a braced value is not closed"),
        ({"axdb": {"connection_string": PG_STRING, "password": "hunter22"}}, "secrets do not belong"),
        ({"orchestrator_data": {"connection_string": PG_STRING}}, "orchestrator_data needs environment_id"),
        ({"probes": [{"name": "p", "sql": "DELETE FROM SYSFLIGHTING"}]}, "one SELECT"),
        ({"probes": [{"name": "p", "sql": "SELECT 1 AS remaining; DROP TABLE X"}]}, "one statement"),
        ({"probes": [{"name": "bad name", "sql": "SELECT 1 AS remaining"}]}, "metric label"),
        (
            {"probes": [{"name": "p", "sql": "SELECT 1 AS remaining"}, {"name": "p", "sql": "SELECT 2 AS remaining"}]},
            "probe names must be unique: p",
        ),
        ({"min_rate_span_hours": 200, "rate_window_days": 7}, "must fit in rate_window_days"),
    ],
)
def test_bad_sql_settings(tmp_path: Path, sql: dict[str, object], message: str) -> None:
    with pytest.raises(ConfigError) as caught:
        load_settings(write_config(tmp_path, {"sql": sql}))
    assert message in str(caught.value)
    assert "hunter22" not in str(caught.value)


def test_bad_rotate_settings(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as caught:
        load_settings(write_config(tmp_path, {"credentials": {"rotate": {"script": "Configure.ps1"}}}))
    assert "not an absolute Windows path" in str(caught.value)


def test_sources_from_the_lab_settings(lab: Lab) -> None:
    settings = load_settings(lab.config_file)
    found = {c.name: c for c in build_collectors(settings)}
    sql, share, credentials = found["sql"], found["agentshare"], found["credentials"]
    assert isinstance(sql, SqlCollector) and sql.targets() == ("AXDB", "OrchestratorData")
    assert sql.databases["AXDB"].url == f"sqlite:{lab.axdb_file}"
    assert [p.name for p in sql.options.probes] == ["lab-encrypted-fields"]
    assert isinstance(share, AgentShareCollector) and share.share.root == lab.agent_share
    assert share.share.unc_prefix == "\\\\DC1\\D365FFOStorage\\agent" and share.locate is not None
    assert isinstance(credentials, CredentialsCollector) and credentials.path == lab.credentials_json


def test_sources_off_without_locations(tmp_path: Path) -> None:
    settings = load_settings(write_config(tmp_path, {}))
    assert {c.name for c in build_collectors(settings)} & {"sql", "agentshare", "credentials"} == set()


def test_postgresql_end_to_end_with_the_password_from_the_environment(
    tmp_path: Path, pg: PgEnvironment, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    seed_reencryption_enabled(pg)
    with axdb_writer(pg) as writer:
        writer.encrypted_fields("A" * 40, 3)
    sql = {
        "axdb": {"connection_string": pg.connection_string(pg.axdb), "login_timeout_seconds": 5},
        "probes": [{"name": "fields", "sql": "SELECT COUNT(*) AS remaining FROM LABENCRYPTEDFIELD"}],
    }
    monkeypatch.setenv("CERTMON_SOURCES__SQL__AXDB__PASSWORD", pg.password)
    daemon = Daemon(load_settings(write_config(tmp_path, {"sql": sql})))
    try:
        view = daemon.collect_once()
        text = generate_latest(daemon.registry).decode()
        assert all(r.health.ok for r in view.evaluation.snapshot), [r.health for r in view.evaluation.snapshot]
        assert 'certmon_reencryption_flight_enabled{environment="default"} 1.0' in text
        assert 'certmon_reencryption_remaining{environment="default",probe="fields"} 3.0' in text
        # The sample went into the state store.
        key = Probe("fields", sql["probes"][0]["sql"]).history_key("AXDB")  # type: ignore[index]
        ((_, remaining, total),) = daemon.store.progress(key)
        assert (remaining, total) == (3.0, None)
        # A wrong password: the source fails with its reason, the password shows nowhere.
        monkeypatch.setenv("CERTMON_SOURCES__SQL__AXDB__PASSWORD", "Wr0ng-" + pg.password)
        with caplog.at_level(logging.WARNING):
            failing = Daemon(load_settings(write_config(tmp_path, {"sql": sql})))
            try:
                failed = failing.collect_once()
                failed_text = generate_latest(failing.registry).decode()
            finally:
                failing.stop()
    finally:
        daemon.stop()
    (result,) = failed.evaluation.snapshot.of_source("sql")
    assert result.health.reason == "auth_failed"
    everything = result.health.message + failed_text + caplog.text + str(failed.evaluation.findings)
    assert pg.password not in everything
    assert 'certmon_source_errors_total{environment="default",reason="auth_failed",source="sql",target="AXDB"} 1.0' in (
        failed_text
    )


NO_ODBC = """
import sys
class NoDriverManager:
    # What `import pyodbc` does on a machine without unixODBC's libodbc.so.2.
    def find_spec(self, name, path=None, target=None):
        if name == "pyodbc":
            raise ImportError("libodbc.so.2: cannot open shared object file: No such file or directory")
sys.meta_path.insert(0, NoDriverManager())
from daemon.cli import main
sys.exit(main(sys.argv[1:]))
"""


def test_the_demo_databases_need_no_odbc_driver_manager(lab: Lab) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("CERTMON_")}
    env["PYTHONPATH"] = str(ROOT)
    done = subprocess.run(
        [sys.executable, "-c", NO_ODBC, "-c", str(lab.config_file), "status", "--format", "json"],
        capture_output=True,
        text=True,
        env=env,
        cwd=ROOT,
        timeout=120,
        check=False,
    )
    sources = {(s["source"], s["target"]): s["up"] for s in json.loads(done.stdout)["sources"]}
    assert sources[("sql", "AXDB")] and sources[("sql", "OrchestratorData")] and sources[("agentshare", "config.json")]


def test_without_the_driver_manager_an_odbc_database_is_a_config_error(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("CERTMON_")}
    env["PYTHONPATH"] = str(ROOT)
    config = write_config(tmp_path, {"sql": {"axdb": {"connection_string": PG_STRING}}})
    done = subprocess.run(
        [sys.executable, "-c", NO_ODBC, "-c", str(config), "status", "--format", "json"],
        capture_output=True,
        text=True,
        env=env,
        cwd=ROOT,
        timeout=120,
        check=False,
    )
    ((source),) = json.loads(done.stdout)["sources"]
    assert (source["up"], source["reason"]) == (False, "config_error"), source
    assert "install unixODBC" in source["message"]
