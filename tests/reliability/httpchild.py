"""A certmon listener in a process of its own, for the HTTP attack tests.

    python -m tests.reliability.httpchild [DESCRIPTOR_LIMIT] [--threading | --cheroot | --waitress]

Serves a pre-rendered /metrics of `SERIES` certificate-like series (daemon.http.HttpServer,
the listener the daemon uses), prints `{"port", "cap"}` as one JSON line, then answers
commands on stdin, one JSON line each:

* `state`: open connections, connections closed for room, peak and current RSS (KiB);
* `files`: open 256 files and one TCP connection, as collectors would, and say whether it worked;
* `stop`: stop and exit.

With DESCRIPTOR_LIMIT the process's soft and hard descriptor limits are set to it first, so
that a test can show the listener leaves room for the collectors. With `--threading` the same
bytes are served by the standard library's ThreadingHTTPServer (the listener certmon had
before), with `--cheroot` or `--waitress` by those production server libraries, for
benchmarks/bench_http.py to compare.
"""

from __future__ import annotations

import contextlib
import json
import os
import socket
import sys
import threading
from typing import Any

from prometheus_client.core import GaugeMetricFamily

from daemon.exposition import render_exposition
from daemon.http import HttpServer, Router, exposition_handler
from daemon.webconfig import WebConfig

SERIES = 400


def _memory() -> dict[str, int]:
    found = {}
    with open("/proc/self/status", encoding="ascii") as status:
        for line in status:
            name, _, value = line.partition(":")
            if name in ("VmRSS", "VmHWM"):
                found[name] = int(value.split()[0])
    return {"rss_kib": found["VmRSS"], "peak_rss_kib": found["VmHWM"]}


def _collector_room() -> dict[str, object]:
    files = []
    try:
        for _ in range(256):
            files.append(open(os.devnull, "rb"))  # noqa: SIM115 - held open on purpose
        probe = socket.socket()
        files.append(probe)
        return {"ok": True}
    except OSError as err:
        return {"ok": False, "error": str(err)}
    finally:
        for item in files:
            item.close()


class _Threading:
    """The standard library's threaded server with the same /metrics bytes."""

    def __init__(self, body: bytes) -> None:
        from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            timeout = 30

            def do_GET(self) -> None:
                self.send_response(200)
                self.send_header("Content-Type", "text/plain; version=0.0.4; charset=utf-8")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args: object) -> None:
                pass

        class Server(ThreadingHTTPServer):
            daemon_threads = True
            request_queue_size = 64

            def handle_error(self, request: object, client_address: object) -> None:
                pass  # clients that hang up mid-answer are what the benchmark does

        self.server = Server(("127.0.0.1", 0), Handler)
        self.port = int(self.server.server_address[1])
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def state(self) -> dict[str, int]:
        return {"connections": threading.active_count() - 2, "evicted": 0}


def _sockets() -> int:
    """Sockets this process holds (the listener's included): connections, whatever the server calls them."""
    count = 0
    for name in os.listdir("/proc/self/fd"):
        with contextlib.suppress(OSError):
            count += os.readlink(f"/proc/self/fd/{name}").startswith("socket:")
    return count


def _wsgi_app(body: bytes) -> Any:
    def app(environ: dict[str, Any], start_response: Any) -> list[bytes]:
        headers = [("Content-Type", "text/plain; version=0.0.4; charset=utf-8"), ("Content-Length", str(len(body)))]
        start_response("200 OK", headers)
        return [body]

    return app


class _Cheroot:
    """cheroot (CherryPy's WSGI server: Windows and Linux, TLS with client certificates), same bytes."""

    def __init__(self, body: bytes) -> None:
        from cheroot import wsgi

        # An exporter's sizing: 8 workers (certmon's), the library's own 10 s socket timeout.
        self.server = wsgi.Server(("127.0.0.1", 0), _wsgi_app(body), numthreads=8, request_queue_size=4096)
        self.server.prepare()
        self.port = int(self.server.bind_addr[1])
        threading.Thread(target=self.server.serve, daemon=True).start()

    def state(self) -> dict[str, int]:
        return {"connections": _sockets() - 1, "evicted": 0}


class _Waitress:
    """waitress (pure Python, Windows and Linux; no TLS), same bytes, its default connection limit."""

    def __init__(self, body: bytes) -> None:
        from waitress.server import create_server

        self.server = create_server(_wsgi_app(body), host="127.0.0.1", port=0, threads=8, backlog=4096)
        self.port = int(self.server.getsockname()[1])  # type: ignore[union-attr]
        #: waitress stops accepting past its connection_limit (100 by default)
        self.cap = int(self.server.adj.connection_limit)  # type: ignore[union-attr]
        threading.Thread(target=self.server.run, daemon=True).start()

    def state(self) -> dict[str, int]:
        return {"connections": _sockets() - 1, "evicted": 0}


BASELINES = {"--threading": _Threading, "--cheroot": _Cheroot, "--waitress": _Waitress}


def main() -> None:
    """Serve until told to stop."""
    args = [a for a in sys.argv[1:] if not a.startswith("--")]
    if args:
        import resource

        limit = int(args[0])
        resource.setrlimit(resource.RLIMIT_NOFILE, (limit, limit))
    family = GaugeMetricFamily(
        "certmon_cert_not_after_timestamp_seconds", "Certificate expiry.", labels=["node", "thumbprint"]
    )
    for i in range(SERIES):
        family.add_metric([f"NODE{i % 20:03d}", f"{i:040X}"], 1.8e9 + i)
    exposition = render_exposition([family])
    chosen = [BASELINES[a] for a in sys.argv[1:] if a in BASELINES]
    if chosen:
        baseline = chosen[0](exposition.text)
        print(json.dumps({"port": baseline.port, "cap": getattr(baseline, "cap", 0)}), flush=True)
        for line in sys.stdin:
            command = line.strip()
            if command == "state":
                print(json.dumps({**baseline.state(), **_memory()}), flush=True)
            elif command == "files":
                print(json.dumps(_collector_room()), flush=True)
            elif command == "stop":
                break
        return
    router = Router()
    router.add("GET", "/metrics", exposition_handler(lambda: exposition))
    server = HttpServer("127.0.0.1", 0, WebConfig(), router)
    server.start()
    print(json.dumps({"port": server.port, "cap": server.engine.cap}), flush=True)
    for line in sys.stdin:
        command = line.strip()
        if command == "state":
            engine = server.engine
            answer = {"connections": engine.connections, "evicted": engine.evicted, **_memory()}
            print(json.dumps(answer), flush=True)
        elif command == "files":
            print(json.dumps(_collector_room()), flush=True)
        elif command == "stop":
            break
    server.stop()


if __name__ == "__main__":
    main()
