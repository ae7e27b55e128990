"""Helpers for the API and status-page tests: configure a lab's `api:` section, start a daemon, call it."""

from __future__ import annotations

import json
import ssl
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import yaml

from daemon.app import Daemon
from daemon.settings import load_settings
from remediations.audit import AUDIT_FILE, JsonlAuditLog
from simulator.lab import Lab

NAME = "localagent-config-update"
TOKEN = "api-token-" + "Zq7" * 10
TOKEN_FILE = "secrets/api-token.txt"


def configure_api(lab: Lab, **api: Any) -> None:
    """Merge settings into the lab's `api:` section (exporter and API on ephemeral ports)."""
    config = yaml.safe_load(lab.config_file.read_text(encoding="utf-8"))
    config.setdefault("api", {}).update(api)
    lab.config_file.write_text(yaml.safe_dump(config, sort_keys=False), encoding="utf-8")


def write_token(lab: Lab, token: str = TOKEN) -> Path:
    """Write the API token file of the lab."""
    path = lab.root / TOKEN_FILE
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(token + "\n", encoding="utf-8")
    return path


@contextmanager
def running(lab: Lab, now: datetime) -> Iterator[Daemon]:
    """A daemon on the lab, collected once at the fixed moment, serving (no schedule)."""
    daemon = Daemon(load_settings(lab.config_file), clock=lambda: now)
    try:
        daemon.collect_once()
        daemon.start(schedule=False)
        assert daemon.api is not None
        yield daemon
    finally:
        daemon.stop()


@dataclass
class Reply:
    """An HTTP answer."""

    status: int
    body: bytes
    headers: dict[str, str]

    def json(self) -> Any:
        """The body as JSON."""
        return json.loads(self.body)


def call(
    url: str,
    method: str = "GET",
    body: Any = None,
    headers: dict[str, str] | None = None,
    context: ssl.SSLContext | None = None,
    timeout: float = 120,
) -> Reply:
    """One request; HTTP errors are answers, not exceptions."""
    data = None
    all_headers = dict(headers or {})
    if body is not None:
        data = body if isinstance(body, bytes) else json.dumps(body).encode()
        all_headers.setdefault("Content-Type", "application/json")
    request = urllib.request.Request(url, data=data, method=method, headers=all_headers)
    try:
        with urllib.request.urlopen(request, timeout=timeout, context=context) as response:
            return Reply(response.status, response.read(), dict(response.headers))
    except urllib.error.HTTPError as err:
        return Reply(err.code, err.read(), dict(err.headers))


def bearer(token: str = TOKEN) -> dict[str, str]:
    """The Authorization header for a token."""
    return {"Authorization": f"Bearer {token}"}


def audit_file(lab: Lab) -> list[dict[str, Any]]:
    """Every record of the lab's JSON-lines audit."""
    return JsonlAuditLog(lab.data_dir / AUDIT_FILE).entries()


def api_records(lab: Lab) -> list[dict[str, Any]]:
    """The API's own records (mode `api`) of the JSON-lines audit."""
    return [r for r in audit_file(lab) if r["mode"] == "api"]
