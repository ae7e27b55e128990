"""The listener under connection floods: a legitimate scraper keeps getting /metrics, memory and descriptors stay bounded.

The listener runs in a process of its own (`tests.reliability.httpchild`), so its memory and
descriptors are its own; attackers and the scraper are this process, all on loopback.
Every wait is on something observed (the child's answers, a reply, a closed socket),
bounded by a deadline that only decides failure.
"""

from __future__ import annotations

import asyncio
import http.client
import json
import selectors
import socket
import ssl
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from daemon.http import HttpServer, Response, Router
from daemon.httpserve import Limits
from daemon.webconfig import WebConfig
from simulator.pki import make_certificate

ROOT = Path(__file__).resolve().parents[2]
DEADLINE = 60.0
SCRAPES = 20
SCRAPE_TIMEOUT = 10.0

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads the child's /proc status")


class Child:
    """The listener process and its command channel."""

    def __init__(self, limit: int | None, threading_baseline: bool | str = False) -> None:
        args = [sys.executable, "-m", "tests.reliability.httpchild"] + ([str(limit)] if limit else [])
        if threading_baseline:  # True: the stdlib server; a name: that library's server (benchmarks)
            args.append("--threading" if threading_baseline is True else f"--{threading_baseline}")
        # A library's server logs every failed accept (cheroot: a traceback per try when out of descriptors).
        quiet = subprocess.DEVNULL if isinstance(threading_baseline, str) else None
        self.process = subprocess.Popen(
            args, cwd=ROOT, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=quiet, text=True
        )
        hello = self._line()
        self.port = int(hello["port"])
        self.cap = int(hello["cap"])

    def _line(self) -> dict[str, Any]:
        assert self.process.stdout is not None
        with selectors.DefaultSelector() as selector:
            selector.register(self.process.stdout, selectors.EVENT_READ)
            if not selector.select(DEADLINE):
                raise AssertionError("the listener process did not answer")
        line = self.process.stdout.readline()
        assert line, "the listener process ended"
        return dict(json.loads(line))

    def ask(self, command: str) -> dict[str, Any]:
        assert self.process.stdin is not None
        self.process.stdin.write(command + "\n")
        self.process.stdin.flush()
        return self._line()

    def wait_for(self, condition: Callable[[dict[str, Any]], bool]) -> dict[str, Any]:
        """Ask for the state until the condition holds (each answer is the event waited on)."""
        started = time.monotonic()
        while True:
            state = self.ask("state")
            if condition(state):
                return state
            if time.monotonic() - started > DEADLINE:
                raise AssertionError(f"condition never held; last state {state}")
            threading.Event().wait(0.05)

    def close(self) -> None:
        with suppress(AssertionError, OSError, ValueError):
            self.ask("stop")
        try:
            self.process.wait(timeout=DEADLINE)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()


@contextmanager
def child(limit: int | None = None, threading_baseline: bool | str = False) -> Iterator[Child]:
    """The listener process (or, for benchmarks, the standard library's threaded server or a library's)."""
    listener = Child(limit, threading_baseline)
    try:
        yield listener
    finally:
        listener.close()


def scrape(port: int) -> tuple[int, float]:
    """One GET /metrics as Prometheus does it: (status, seconds)."""
    started = time.monotonic()
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=SCRAPE_TIMEOUT)
    try:
        connection.request("GET", "/metrics", headers={"Accept-Encoding": "gzip"})
        response = connection.getresponse()
        body = response.read()
        assert body, "an empty answer"
        return response.status, time.monotonic() - started
    finally:
        connection.close()


class Slowloris:
    """Holds `count` connections open with unfinished request heads, reopening each one the listener closes."""

    HEAD = b"GET /metrics HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: "

    def __init__(self, port: int, count: int, head: bytes = HEAD) -> None:
        self.port, self.count, self.head = port, count, head
        self.stop = threading.Event()
        self.opened = 0
        self.ready = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _open(self, selector: selectors.BaseSelector) -> None:
        sock = socket.socket()
        sock.setblocking(False)
        try:
            sock.connect_ex(("127.0.0.1", self.port))
            selector.register(sock, selectors.EVENT_WRITE)
        except OSError:
            sock.close()
            return
        self.opened += 1

    def _run(self) -> None:
        with selectors.DefaultSelector() as selector:
            for _ in range(self.count):
                self._open(selector)
            self.ready.set()
            while not self.stop.is_set():
                for key, events in selector.select(0.2):
                    sock: socket.socket = key.fileobj  # type: ignore[assignment]
                    if events & selectors.EVENT_WRITE:
                        try:
                            sock.send(self.head)
                            selector.modify(sock, selectors.EVENT_READ)
                            continue
                        except OSError:
                            pass
                    else:
                        try:
                            if sock.recv(65536):
                                continue
                        except OSError:
                            pass
                    # Closed by the listener: an attacker opens another one at once.
                    selector.unregister(sock)
                    sock.close()
                    self._open(selector)
            for key in list(selector.get_map().values()):
                key.fileobj.close()  # type: ignore[union-attr]

    def __enter__(self) -> Slowloris:
        self._thread.start()
        assert self.ready.wait(DEADLINE)
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop.set()
        self._thread.join(DEADLINE)


def test_a_scraper_is_served_through_a_slowloris_and_collectors_keep_descriptors() -> None:
    """1,200 slow connections against a listener whose process may open 700 descriptors."""
    with child(limit=700) as listener:
        assert listener.cap <= (700 - 256) // 2
        with Slowloris(listener.port, 1200):
            state = listener.wait_for(lambda s: s["evicted"] >= 1200 - listener.cap)
            assert state["connections"] <= listener.cap
            results = [scrape(listener.port) for _ in range(SCRAPES)]
            room = listener.ask("files")
            state = listener.ask("state")
        assert [status for status, _ in results] == [200] * SCRAPES
        assert room == {"ok": True}, "the collectors could not open files or sockets"
        assert state["connections"] <= listener.cap
        print(f"slowloris: worst scrape {max(t for _, t in results) * 1000:.0f} ms, {state}")


async def _flood(port: int, clients: int, rounds: int) -> list[int]:
    statuses: list[int] = []

    async def one() -> None:
        for _ in range(rounds):
            try:
                reader, writer = await asyncio.open_connection("127.0.0.1", port)
                writer.write(b"GET /metrics HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n")
                answer = await reader.read()
                writer.close()
                statuses.append(int(answer.split(b" ", 2)[1]) if answer else 0)
            except OSError:
                statuses.append(0)

    await asyncio.gather(*(one() for _ in range(clients)))
    return statuses


def test_a_scraper_is_served_during_2000_concurrent_scrapes() -> None:
    with child() as listener:
        flood: list[int] = []
        done = threading.Event()

        def run() -> None:
            flood.extend(asyncio.run(_flood(listener.port, 2000, 2)))
            done.set()

        thread = threading.Thread(target=run, daemon=True)
        thread.start()
        results: list[tuple[int, float]] = []
        while not done.is_set() or len(results) < SCRAPES:
            results.append(scrape(listener.port))
        assert done.wait(DEADLINE * 4)
        state = listener.ask("state")
    assert [status for status, _ in results] == [200] * len(results)
    assert len(flood) == 4000
    # Load is shed by waiting in the accept backlog, not by closing scrapers that sent their request.
    assert flood.count(200) == 4000 and state["evicted"] == 0
    assert state["connections"] <= listener.cap
    print(
        f"flood: {len(results)} scrapes, worst {max(t for _, t in results) * 1000:.0f} ms; "
        f"flood answers 200: {flood.count(200)}, other: {len(flood) - flood.count(200)}"
    )


def test_large_headers_from_250_slow_clients_do_not_grow_memory() -> None:
    """250 clients hold heads just under the limit; then 250 more send megabytes of header lines."""
    line = b"X-Big: " + b"a" * 1000 + b"\r\n"
    with child() as listener:
        before = listener.ask("state")
        held = Slowloris.HEAD[: -len(b"X-Slow: ")] + line * 15 + b"X-Slow: "
        with Slowloris(listener.port, 250, held):
            state = listener.wait_for(lambda s: s["connections"] >= 250)
            blast = b"GET /metrics HTTP/1.1\r\nHost: 127.0.0.1\r\n" + (b"X-Huge: " + b"b" * 65000 + b"\r\n") * 16

            def send() -> None:
                try:
                    with socket.create_connection(("127.0.0.1", listener.port), timeout=SCRAPE_TIMEOUT) as sock:
                        sock.sendall(blast)
                        while sock.recv(65536):
                            pass
                except OSError:
                    pass  # the listener refused (431) and closed while the headers were still coming

            senders = [threading.Thread(target=send) for _ in range(250)]
            for sender in senders:
                sender.start()
            for sender in senders:
                sender.join(DEADLINE)
            assert [scrape(listener.port)[0] for _ in range(3)] == [200] * 3
            state = listener.ask("state")
    grown_mib = (state["peak_rss_kib"] - before["rss_kib"]) / 1024
    print(f"large headers: peak RSS grew {grown_mib:.1f} MiB ({before} -> {state})")
    assert grown_mib < 64, f"peak RSS grew by {grown_mib:.0f} MiB"


def test_silent_tls_connections_are_bounded_and_a_scraper_gets_through(tmp_path: Path) -> None:
    """Connections that never start their TLS handshake hold no slot (or descriptor) for long."""
    now = datetime.now(UTC)
    server_cert = make_certificate(
        "localhost",
        not_before=now.replace(year=now.year - 1),
        not_after=now.replace(year=now.year + 1),
        dns_names=("localhost",),
        ip_addresses=("127.0.0.1",),
    )
    (tmp_path / "server.crt").write_bytes(server_cert.pem)
    (tmp_path / "server.key").write_bytes(server_cert.key_pem)
    web = WebConfig(tls={"cert_file": str(tmp_path / "server.crt"), "key_file": str(tmp_path / "server.key")})
    router = Router()
    router.add("GET", "/metrics", lambda request: Response.text("certmon_up 1\n"))
    listener = HttpServer("127.0.0.1", 0, web, router, limits=Limits(max_connections=64))
    listener.start()
    context = ssl.create_default_context(cafile=str(tmp_path / "server.crt"))
    try:
        silent = [socket.create_connection(("127.0.0.1", listener.port)) for _ in range(300)]
        try:
            for _ in range(5):
                connection = http.client.HTTPSConnection(
                    "127.0.0.1", listener.port, timeout=SCRAPE_TIMEOUT, context=context
                )
                connection.request("GET", "/metrics")
                assert connection.getresponse().status == 200
                connection.close()
            assert listener.engine.connections <= 64
            assert listener.engine.evicted > 0
        finally:
            for sock in silent:
                sock.close()
    finally:
        listener.stop()
