"""No secret leaves certmon: logs, /metrics, the status page, /api/status, API answers, the audit and the state store.

The lab runs with known secret values: the WinRM password (NTLM to simulated nodes), the SQL
password (AXDB on PostgreSQL through psqlODBC), the PFX password (certificate folder and the
Service Fabric client certificates), the API token, and the plaintexts inside Credentials.json.
One daemon collects every source for real, serves the exporter and the API, plans every
remediation (dry run), refuses applies with no or a wrong token and applies two with the token
(one edits a file, one runs Configure-CredentialsJson.ps1 over WinRM). A second daemon then
collects with wrong passwords everywhere. Everything each daemon wrote or answered is scanned
for each secret, raw and in its base64, hex, UTF-16, URL and JSON forms.
"""

from __future__ import annotations

import base64
import contextlib
import io
import json
import logging
import os
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest
import yaml

from daemon.app import Daemon
from daemon.logs import setup_logging
from daemon.settings import ConfigError, load_settings
from daemon.state import StateStore
from remediations.audit import AUDIT_FILE
from simulator.agentshare import decrypt_value
from simulator.lab import Lab, build_lab, write_config
from simulator.postgres import PgEnvironment, PostgresServer
from simulator.winrm import SimulatedFleet
from tests.axdbkit import seed_reencryption_enabled
from tests.daemon.apikit import TOKEN, TOKEN_FILE, bearer, call, configure_api, write_token
from tests.sfkit import sf_lab

NOW = datetime(2026, 11, 27, 12, 0, 0, tzinfo=UTC)
WRONG = "Wr0ng-"
SQL_PASSWORD_ENV = "CERTMON_SOURCES__SQL__AXDB__PASSWORD"
APPLIED = ("deployment-config-update", "credentials-json-rotate")


class _Records(logging.Handler):
    """Every record as text, before any filter of another handler rewrites it (no redaction here)."""

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.texts: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        text = record.getMessage()
        if record.exc_info:
            text += "\n" + logging.Formatter().formatException(record.exc_info)
        self.texts.append(text)


@dataclass
class Exposure:
    """What the daemons showed to the world, by where it was seen; and the secrets it must not contain."""

    secrets: dict[str, str] = field(default_factory=dict)
    #: Credentials.json's encrypted values: not in logs, metrics, pages or the audit either
    ciphertexts: dict[str, str] = field(default_factory=dict)
    seen: dict[str, bytes] = field(default_factory=dict)
    health: dict[str, dict[str, str]] = field(default_factory=dict)
    problems: dict[str, dict[str, set[str]]] = field(default_factory=dict)
    planned: dict[str, dict[str, str]] = field(default_factory=dict)
    applied: dict[str, str] = field(default_factory=dict)

    def add(self, where: str, data: bytes | str) -> None:
        """Record one artifact."""
        self.seen[where] = self.seen.get(where, b"") + (data.encode() if isinstance(data, str) else data)


def forms(secret: str) -> dict[str, bytes]:
    """The ways a secret can be written down: raw, JSON, URL, hex, UTF-16, and base64 at any alignment."""
    raw = secret.encode()
    out = {
        "raw": raw,
        "json": json.dumps(secret)[1:-1].encode(),
        "url": quote(secret, safe="").encode(),
        "hex": raw.hex().encode(),
        "HEX": raw.hex().upper().encode(),
        "utf-16": secret.encode("utf-16-le"),
    }
    for offset in range(3):
        for name, encode in (("base64", base64.b64encode), ("base64url", base64.urlsafe_b64encode)):
            encoded = encode(b"\0" * offset + raw)
            # Only the characters made of the secret's bits alone, whatever precedes or follows it.
            out[f"{name}+{offset}"] = encoded[-(-8 * offset // 6) : 8 * (offset + len(raw)) // 6]
    return out


def _postgres_axdb(pg: PgEnvironment) -> None:
    seed_reencryption_enabled(pg)


def _configure(lab: Lab, fleet: SimulatedFleet, sf_section: dict[str, Any], pg: PgEnvironment) -> None:
    write_config(lab, 0, fleet.addresses())
    config = yaml.safe_load(lab.config_file.read_text(encoding="utf-8"))
    sources = config["sources"]
    sources["certfolder"].update({"enabled": True, "nodes": ["ORCH1"]})
    sources["servicefabric"] = sf_section
    sources["sql"]["axdb"] = {"connection_string": pg.connection_string(pg.axdb), "login_timeout_seconds": 5}
    sources["winrm"]["timeout_seconds"] = 30
    lab.config_file.write_text(yaml.safe_dump(config, sort_keys=False), encoding="utf-8")
    write_token(lab)
    configure_api(lab, token_file=TOKEN_FILE)


@contextlib.contextmanager
def _sql_password(value: str) -> Iterator[None]:
    saved = os.environ.get(SQL_PASSWORD_ENV)
    os.environ[SQL_PASSWORD_ENV] = value
    try:
        yield
    finally:
        if saved is None:
            os.environ.pop(SQL_PASSWORD_ENV, None)
        else:
            os.environ[SQL_PASSWORD_ENV] = saved


def _serve_and_read(daemon: Daemon, exposure: Exposure, phase: str) -> None:
    """Scrape, read the page and the status API, list and plan every remediation."""
    daemon.start(schedule=False)
    assert daemon.http is not None and daemon.api is not None
    api = daemon.api.url
    exposure.add(f"{phase}: /metrics", call(daemon.http.url + "/metrics").body)
    exposure.add(f"{phase}: status page", call(api + "/").body)
    exposure.add(f"{phase}: /api/status", call(api + "/api/status").body)
    listing = call(api + "/api/remediations")
    exposure.add(f"{phase}: /api/remediations", listing.body)
    for item in listing.json()["remediations"]:
        plan = call(f"{api}/api/remediations/{item['name']}/plan", "POST")
        exposure.add(f"{phase}: plan (dry run) answers", plan.body)
        exposure.planned.setdefault(phase, {})[item["name"]] = plan.json()["outcome"]
    exposure.health[phase] = {
        f"{r.source}/{r.target}": f"{r.health.reason}: {r.health.message}" if not r.health.ok else "ok"
        for r in daemon.view.evaluation.snapshot
    }
    # A folder of certificate files stays up and reports each file it cannot open as a problem.
    exposure.problems[phase] = {
        f"{r.source}/{r.target}": {str(p.reason) for p in r.observation.problems}
        for r in daemon.view.evaluation.snapshot
        if r.observation is not None
    }


def _apply(daemon: Daemon, exposure: Exposure) -> None:
    assert daemon.api is not None
    api = daemon.api.url
    for name in APPLIED:
        url = f"{api}/api/remediations/{name}/apply"
        for headers in ({}, bearer("x" + TOKEN[1:]), bearer(TOKEN + "x"), {"Authorization": f"Basic {TOKEN}"}):
            refused = call(url, "POST", headers=headers)
            assert refused.status == 401, refused.body
            exposure.add("apply answers", refused.body)
            exposure.add("apply answer headers", json.dumps(refused.headers))
        answer = call(url, "POST", headers=bearer())
        exposure.add("apply answers", answer.body)
        exposure.applied[name] = answer.json().get("outcome", answer.body.decode())


def _artifacts(lab: Lab, exposure: Exposure) -> None:
    """The audit file, the store's audit table and every file of the data folder but the backups."""
    data = lab.data_dir
    exposure.add("audit.jsonl", (data / AUDIT_FILE).read_bytes())
    store = StateStore(data)
    try:
        exposure.add("state store audit table", json.dumps(store.audit_entries(100_000), default=str))
    finally:
        store.close()
    for path in sorted(data.rglob("*")):
        if path.is_file() and "backups" not in path.relative_to(data).parts:
            exposure.add(f"data folder: {path.relative_to(data)}", path.read_bytes())


@pytest.fixture(scope="module")
def exposure(tmp_path_factory: pytest.TempPathFactory, postgres_server: PostgresServer) -> Iterator[Exposure]:
    """Run the whole scenario once; everything it exposed, by where."""
    lab = build_lab(tmp_path_factory.mktemp("secrets") / "lab", now=NOW, port=0)
    pg = PgEnvironment(postgres_server, "secrets" + uuid.uuid4().hex[:8])
    _postgres_axdb(pg)
    found = Exposure()
    keys = [
        (lab.cert("ServiceFabricEncryption", g).issued.cert, lab.cert("ServiceFabricEncryption", g).issued.key)
        for g in ("old", "new")
    ]
    credentials = json.loads(lab.credentials_json.read_text(encoding="utf-8"))
    for group, values in credentials.items():
        for name, value in values.items():
            found.secrets[f"Credentials.json {group}.{name}"] = decrypt_value(value, keys).decode()  # type: ignore[arg-type]
            found.ciphertexts[f"Credentials.json {group}.{name} (encrypted)"] = value
    found.secrets |= {
        "WinRM password": lab.winrm_password,
        "PFX password": lab.password,
        "SQL password": pg.password,
        "API token": TOKEN,
    }
    root = logging.getLogger()
    records = _Records()
    level = root.level
    root.addHandler(records)  # first: the daemon's own handler below rewrites records as it redacts
    printed = io.StringIO()
    with contextlib.redirect_stderr(printed):
        setup_logging("DEBUG")
    try:
        with SimulatedFleet.from_lab(lab) as fleet, sf_lab(lab) as sf:
            sf_section = yaml.safe_load(sf.write_settings().read_text(encoding="utf-8"))["sources"]["servicefabric"]
            sf_section["follow_upgrade_seconds"] = 0
            # The cluster runs the staged configuration (its upgrade completed), as deployment-config-update
            # requires before it points the agent at the new certificates.
            sf.cluster.start_upgrade({"ClusterConfig": lab.cluster_config.read_text(encoding="utf-8")})
            sf.finish_upgrade()
            _configure(lab, fleet, sf_section, pg)
            with _sql_password(pg.password):
                daemon = Daemon(load_settings(lab.config_file), clock=lambda: NOW)
            try:
                daemon.collect_once()
                _serve_and_read(daemon, found, "collected")
                _apply(daemon, found)
            finally:
                daemon.stop()
            # Wrong passwords everywhere: every secret-bearing source fails, and says so without the secret.
            wrong = {"wrong WinRM password": WRONG + lab.winrm_password, "wrong PFX password": WRONG + lab.password}
            lab.winrm_password_file.write_text(wrong["wrong WinRM password"] + "\n", encoding="utf-8")
            lab.password_file.write_text(wrong["wrong PFX password"] + "\n", encoding="utf-8")
            wrong["wrong SQL password"] = WRONG + pg.password
            found.secrets |= wrong
            with _sql_password(wrong["wrong SQL password"]):
                failing = Daemon(load_settings(lab.config_file), clock=lambda: NOW)
            try:
                failing.collect_once()
                _serve_and_read(failing, found, "wrong passwords")
            finally:
                failing.stop()
        _artifacts(lab, found)
    finally:
        root.removeHandler(records)
        for handler in [h for h in root.handlers if getattr(h, "_certmon", False)]:
            root.removeHandler(handler)
        root.setLevel(level)
    found.add("log records (unredacted)", "\n".join(records.texts))
    found.add("daemon log output", printed.getvalue())
    yield found


def test_the_scenario_ran_every_secret_through_the_daemon(exposure: Exposure) -> None:
    collected, failing = exposure.health["collected"], exposure.health["wrong passwords"]
    for source in ("winrm", "sql", "certfolder", "servicefabric", "credentials"):
        assert any(k.startswith(source + "/") for k in collected), source
        assert all(v == "ok" for k, v in collected.items() if k.startswith(source + "/")), collected
    assert exposure.applied == dict.fromkeys(APPLIED, "applied")
    wanted = {"winrm": "auth_failed", "sql/AXDB": "auth_failed", "servicefabric": "wrong_password"}
    assert exposure.problems["wrong passwords"]["certfolder/ORCH1"] == {"wrong_password"}
    for prefix, reason in wanted.items():
        reasons = {v.split(":")[0] for k, v in failing.items() if k.startswith(prefix)}
        assert reasons == {reason}, (prefix, reasons, failing)
    assert "WinRM password" in exposure.secrets and len(exposure.secrets) >= 10
    assert all(exposure.planned["collected"][name] == "planned" for name in APPLIED), exposure.planned
    # The logs were captured at DEBUG, failures included.
    assert b"DEBUG" in exposure.seen["daemon log output"] and b"AXDB" in exposure.seen["log records (unredacted)"]


WHERE = [
    "collected: /metrics",
    "collected: status page",
    "collected: /api/status",
    "collected: plan (dry run) answers",
    "apply answers",
    "wrong passwords: /metrics",
    "wrong passwords: status page",
    "wrong passwords: /api/status",
    "audit.jsonl",
    "state store audit table",
    "log records (unredacted)",
    "daemon log output",
    "data folder",
]


@pytest.mark.parametrize("where", WHERE)
def test_no_secret_in(exposure: Exposure, where: str) -> None:
    texts = {k: v for k, v in exposure.seen.items() if k == where or k.startswith(where + ":")}
    assert texts and any(texts.values()), f"nothing was captured for {where}"
    leaks = [
        f"{name} ({form}) in {seen}"
        for name, secret in exposure.secrets.items()
        for form, encoded in forms(secret).items()
        for seen, data in texts.items()
        if encoded in data
    ]
    if not where.startswith("data folder"):
        leaks += [
            f"{name} in {seen}"
            for name, c in exposure.ciphertexts.items()
            for seen, d in texts.items()
            if c.encode() in d
        ]
    assert not leaks, leaks


def test_the_forms_find_a_secret_wherever_it_is_written() -> None:
    secret = "s3cr3t-Value_for/the+test"
    for prefix in (b"", b"x", b"xy"):
        blob = base64.b64encode(prefix + secret.encode() + b"tail")
        assert any(encoded in blob for form, encoded in forms(secret).items() if form.startswith("base64+"))
    assert forms(secret)["url"] in f"https://h/?p={quote(secret, safe='')}&q=1".encode()


@pytest.mark.parametrize(
    "connection_string",
    [
        "Driver={PostgreSQL Unicode};Server=sql1;Pwd=Hunter2;Secret-tail",
        "Driver={PostgreSQL Unicode};Server=sql1;Password={Hunter2;Secret-tail",
        "Driver={PostgreSQL Unicode};Server=sql1;Pwd={Hunter2}Secret-tail",
        "Driver={PostgreSQL Unicode};Server=sql1;PWD=Hunter2;Secret-tail=1",
    ],
)
def test_a_password_in_a_malformed_connection_string_is_not_quoted_back(tmp_path: Path, connection_string: str) -> None:
    # Regression: a keyword-less segment was quoted in the error: the tail of a password split at ';'.
    config = tmp_path / "certmon.yaml"
    sql = {"axdb": {"connection_string": connection_string}}
    config.write_text(yaml.safe_dump({"data_dir": str(tmp_path / "data"), "sources": {"sql": sql}}), encoding="utf-8")
    with pytest.raises(ConfigError) as caught:
        load_settings(config)
    assert "Hunter2" not in str(caught.value) and "Secret-tail" not in str(caught.value), str(caught.value)
