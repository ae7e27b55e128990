"""Moving a running demo to another stage: a small HTTP endpoint on loopback, and its client.

The demo writes `demo.json` into the lab folder (readable by its owner only): the control URL,
a bearer token, and where the metrics and the status page are. `POST /stage {"stage": NAME}`
starts the move in the background (202; 409 when the move is impossible or one is running);
`GET /stage?since=N` answers where the lab stands, whether a move is running, its error, and
the log lines after number N. `request_stage()` is what `certmon demo --set-stage` runs.
"""

from __future__ import annotations

import hmac
import json
import os
import secrets
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from types import TracebackType
from typing import Any, TextIO
from urllib.parse import parse_qs, urlsplit

from simulator.stages import LabRotation, StageError, path_between

CONTROL_FILE = "demo.json"


class StageLog:
    """Numbered lines of what the demo did, kept for clients that poll."""

    def __init__(self, echo: Callable[[str], None] = lambda text: None, keep: int = 1000) -> None:
        self._lines: list[tuple[int, str]] = []
        self._next = 1
        self._keep = keep
        self._echo = echo
        self._lock = threading.Lock()

    def add(self, text: str) -> None:
        """Record (and echo) one line."""
        with self._lock:
            self._lines.append((self._next, text))
            self._next += 1
            del self._lines[: -self._keep]
        self._echo(text)

    def since(self, number: int) -> list[tuple[int, str]]:
        """The lines numbered above `number`."""
        with self._lock:
            return [line for line in self._lines if line[0] > number]


class _Handler(BaseHTTPRequestHandler):
    server: _Server
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: Any) -> None:
        """Quiet: the demo prints what the moves do."""

    def _authorized(self) -> bool:
        offered = self.headers.get("Authorization", "")
        expected = f"Bearer {self.server.owner.token}"
        return hmac.compare_digest(offered.encode(), expected.encode())

    def do_GET(self) -> None:
        parts = urlsplit(self.path)
        if not self._authorized():
            self._reply(401, {"error": "a bearer token from demo.json is needed"})
        elif parts.path != "/stage":
            self._reply(404, {"error": f"unknown path {parts.path}"})
        else:
            since = parse_qs(parts.query).get("since", ["0"])[0]
            self._reply(200, self.server.owner.state(int(since) if since.isdigit() else 0))

    def do_POST(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length) if length else b""
        if not self._authorized():
            self._reply(401, {"error": "a bearer token from demo.json is needed"})
            return
        if urlsplit(self.path).path != "/stage":
            self._reply(404, {"error": f"unknown path {self.path}"})
            return
        try:
            body = json.loads(raw or b"null")
            stage = body["stage"] if isinstance(body, dict) else None
            if not isinstance(stage, str):
                raise ValueError('send {"stage": NAME}')
        except (ValueError, KeyError) as err:
            self._reply(400, {"error": f"bad request: {err}"})
            return
        status, answer = self.server.owner.begin(stage)
        self._reply(status, answer)

    def _reply(self, status: int, document: dict[str, Any]) -> None:
        body = json.dumps(document).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


class _Server(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, owner: StageControl) -> None:
        self.owner = owner
        super().__init__(("127.0.0.1", 0), _Handler)


class StageControl:
    """The control endpoint of one running demo; a context manager."""

    def __init__(self, rotation: LabRotation, log: StageLog, token: str | None = None) -> None:
        self.rotation = rotation
        self.log = log
        self.token = token or secrets.token_urlsafe(24)
        self.target = rotation.stage
        self.error = ""
        self._worker: threading.Thread | None = None
        self._lock = threading.Lock()
        self._server = _Server(self)
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        """http://127.0.0.1:port."""
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    @property
    def busy(self) -> bool:
        """A move is running."""
        return self._worker is not None and self._worker.is_alive()

    def state(self, since: int = 0) -> dict[str, Any]:
        """Where the lab stands and the log lines after `since`."""
        with self._lock:
            return {
                "stage": self.rotation.stage,
                "target": self.target,
                "busy": self.busy,
                "error": self.error,
                "log": [{"n": n, "text": text} for n, text in self.log.since(since)],
            }

    def begin(self, stage: str) -> tuple[int, dict[str, Any]]:
        """Start moving to `stage` in the background: (HTTP status, answer)."""
        with self._lock:
            if self.busy:
                return 409, {"error": f"the demo is still moving to {self.target}"}
            try:
                path_between(self.rotation.stage, stage)
            except StageError as err:
                return 409, {"error": str(err)}
            self.target, self.error = stage, ""
            self._worker = threading.Thread(target=self._move, args=(stage,), name="demo-stage", daemon=True)
            self._worker.start()
        return 202, {"stage": self.rotation.stage, "target": stage}

    def _move(self, stage: str) -> None:
        try:
            self.rotation.move_to(stage)
        except Exception as err:  # noqa: BLE001 - reported to the client and the log, the demo keeps running
            with self._lock:
                self.error = f"{type(err).__name__}: {err}" if not isinstance(err, StageError) else str(err)
            self.log.add(f"moving to {stage} failed: {self.error}")

    def write_file(self, root: Path, **urls: str) -> Path:
        """demo.json in the lab folder, readable by its owner only (it holds the token)."""
        path = root / CONTROL_FILE
        document = {"control": self.url, "token": self.token, "pid": os.getpid(), **urls}
        path.unlink(missing_ok=True)
        descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(descriptor, "w", encoding="utf-8") as handle:
            json.dump(document, handle, indent=2)
        return path

    def start(self) -> StageControl:
        """Serve on a background thread."""
        self._thread = threading.Thread(target=self._server.serve_forever, name="demo-control", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop serving; a move in progress is left to finish with the demo."""
        self._server.shutdown()
        self._server.server_close()

    def __enter__(self) -> StageControl:
        return self.start()

    def __exit__(
        self, kind: type[BaseException] | None, value: BaseException | None, trace: TracebackType | None
    ) -> None:
        self.stop()


class ControlError(Exception):
    """The demo could not be reached or refused the move; the message says why."""


def _call(document: dict[str, Any], method: str, path: str, body: dict[str, Any] | None = None) -> Any:
    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(  # noqa: S310 - read_control_file admits only the loopback URL
        document["control"] + path,
        data=data,
        method=method,
        headers={"Authorization": f"Bearer {document['token']}", "Content-Type": "application/json"},
    )
    try:
        with urllib.request.urlopen(request, timeout=30) as reply:  # noqa: S310 - the demo's loopback URL
            return json.loads(reply.read())
    except urllib.error.HTTPError as err:
        try:
            message = json.loads(err.read()).get("error", "")
        except ValueError:
            message = ""
        raise ControlError(message or f"the demo answered HTTP {err.code}") from err
    except OSError as err:
        raise ControlError(f"the demo at {document['control']} does not answer ({err}); is it still running?") from err


def read_control_file(root: Path) -> dict[str, Any]:
    """demo.json of a running demo; ControlError when there is none."""
    path = root / CONTROL_FILE
    try:
        document = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError as err:
        raise ControlError(f"{path} does not exist: no demo is running with --dir {root}") from err
    except (OSError, ValueError) as err:
        raise ControlError(f"{path}: {err}") from err
    if not isinstance(document, dict) or "token" not in document:
        raise ControlError(f"{path} is not a demo control file")
    if not str(document.get("control", "")).startswith("http://127.0.0.1:"):
        raise ControlError(f"{path}: the control URL must be on 127.0.0.1")
    return document


def request_stage(root: Path, stage: str, out: TextIO, timeout: float = 900.0, poll: float = 0.25) -> str:
    """Move the demo running in `root` to `stage`, printing what it does; returns the stage reached."""
    document = read_control_file(root)
    seen = _call(document, "GET", "/stage")["log"]
    last = seen[-1]["n"] if seen else 0
    _call(document, "POST", "/stage", {"stage": stage})
    deadline = time.monotonic() + timeout
    while True:
        state = _call(document, "GET", f"/stage?since={last}")
        for line in state["log"]:
            print(line["text"], file=out, flush=True)
            last = line["n"]
        if not state["busy"]:
            if state["error"]:
                raise ControlError(state["error"])
            return str(state["stage"])
        if time.monotonic() > deadline:
            raise ControlError(f"the demo is still moving to {stage} after {timeout:.0f} s")
        time.sleep(poll)
