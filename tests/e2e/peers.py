"""The end-to-end peers: Debian's prometheus and prometheus-alertmanager on loopback, and a webhook receiver.

Prometheus runs the shipped deploy/prometheus/prometheus.yml (its certmon-local job, the one
for a daemon on the same host) and deploy/prometheus/rules.yml unchanged; only the targets and
the intervals change: scrapes and rule evaluations every second, so that a collection cycle of
the demo (seconds, with --speed) is several of them. Alertmanager routes everything to a
webhook receiver on loopback that records each notification.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import threading
import time
import urllib.parse
import urllib.request
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import yaml

from tests.conftest import ROOT, free_port

PROMETHEUS = shutil.which("prometheus")
ALERTMANAGER = shutil.which("prometheus-alertmanager")
DEPLOY = ROOT / "deploy" / "prometheus"
# Generous: the machine may be shared; assertions count collection cycles, not seconds.
WAIT_SECONDS = 120.0


def wait_for(what: str, check: Callable[[], Any], timeout: float = WAIT_SECONDS, every: float = 0.2) -> Any:
    """Poll `check` until it returns something truthy; fail naming `what` after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(every)


def get_json(url: str) -> Any:
    """GET a JSON document."""
    with urllib.request.urlopen(url, timeout=10) as reply:
        return json.loads(reply.read())


class Webhook:
    """An Alertmanager webhook receiver on loopback that keeps every notification."""

    def __init__(self) -> None:
        self.notifications: list[dict[str, Any]] = []
        self._lock = threading.Lock()
        owner = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                with owner._lock:
                    owner.notifications.append(json.loads(body))
                self.send_response(200)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, format: str, *args: Any) -> None:
                """Quiet."""

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/alerts"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def alerts(self, name: str, status: str) -> list[dict[str, Any]]:
        """The alerts named `name` with `status` (firing, resolved) in the notifications so far."""
        with self._lock:
            return [
                alert
                for note in self.notifications
                for alert in note["alerts"]
                if alert["labels"].get("alertname") == name and alert["status"] == status
            ]

    def close(self) -> None:
        """Stop serving."""
        self.server.shutdown()
        self.server.server_close()


class Service:
    """A Debian Prometheus or Alertmanager process on a free loopback port; its log in the test folder."""

    def __init__(self, argv: list[str], port: int, log: Path) -> None:
        self.url = f"http://127.0.0.1:{port}"
        self.name = Path(argv[0]).name
        self.log = log
        self._log_handle = log.open("wb")
        self.process = subprocess.Popen(argv, stdout=self._log_handle, stderr=subprocess.STDOUT)
        wait_for(f"{argv[0]} to be ready", self._ready, timeout=60)

    def _ready(self) -> bool:
        if self.process.poll() is not None:
            raise AssertionError(f"{self.name} exited: {self.log.read_text(errors='replace')[-2000:]}")
        try:
            with urllib.request.urlopen(self.url + "/-/ready", timeout=2) as reply:
                return bool(reply.status == 200)
        except OSError:
            return False

    def close(self) -> None:
        """Terminate the process (it was started by this test)."""
        self.process.terminate()
        try:
            self.process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        self._log_handle.close()


def prometheus_config(folder: Path, metrics_url: str, alertmanager_url: str, environment: str) -> Path:
    """The shipped prometheus.yml reduced to its certmon-local job, aimed at the demo, with 1 s intervals."""
    config = yaml.safe_load((DEPLOY / "prometheus.yml").read_text(encoding="utf-8"))
    config["global"].update(scrape_interval="1s", scrape_timeout="1s", evaluation_interval="1s")
    local = next(job for job in config["scrape_configs"] if job["job_name"] == "certmon-local")
    target = urllib.parse.urlsplit(metrics_url).netloc
    local["static_configs"] = [{"targets": [target], "labels": {"__tmp_environment": environment}}]
    config["scrape_configs"] = [local]
    config["alerting"]["alertmanagers"] = [
        {"static_configs": [{"targets": [urllib.parse.urlsplit(alertmanager_url).netloc]}]}
    ]
    # rules.yml as shipped: the removed-early alert has no `for:`, so no test override is needed.
    shutil.copy(DEPLOY / "rules.yml", folder / "rules.yml")
    path = folder / "prometheus.yml"
    path.write_text(yaml.safe_dump(config, sort_keys=False), encoding="utf-8")
    return path


def alertmanager_config(folder: Path, webhook: Webhook) -> Path:
    """Everything to the webhook, resolved notifications included, grouped per alert with 1 s waits."""
    config = {
        "route": {
            "receiver": "webhook",
            "group_by": ["alertname", "environment", "node", "thumbprint"],
            "group_wait": "1s",
            "group_interval": "1s",
            "repeat_interval": "1h",
        },
        "receivers": [{"name": "webhook", "webhook_configs": [{"url": webhook.url, "send_resolved": True}]}],
    }
    path = folder / "alertmanager.yml"
    path.write_text(yaml.safe_dump(config), encoding="utf-8")
    return path


def start_prometheus(folder: Path, metrics_url: str, alertmanager: Service, environment: str) -> Service:
    """Debian's prometheus scraping the demo, with the shipped rules, sending to Alertmanager."""
    assert PROMETHEUS is not None
    port = free_port()
    config = prometheus_config(folder, metrics_url, alertmanager.url, environment)
    return Service(
        [
            PROMETHEUS,
            f"--config.file={config}",
            f"--storage.tsdb.path={folder / 'data'}",
            f"--web.listen-address=127.0.0.1:{port}",
        ],
        port,
        folder / "prometheus.log",
    )


def query(prometheus: Service, expr: str) -> list[dict[str, Any]]:
    """An instant query; the result vector (or a scalar as one sample)."""
    answer = get_json(f"{prometheus.url}/api/v1/query?query={urllib.parse.quote(expr)}")
    assert answer["status"] == "success", answer
    data = answer["data"]
    if data["resultType"] == "scalar":
        return [{"metric": {}, "value": data["result"]}]
    return list(data["result"])
