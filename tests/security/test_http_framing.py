"""Malformed HTTP framing is refused with a 4xx and the connection closes: nothing after it is served.

Each case talks raw bytes to a real listener (daemon.http.HttpServer) on loopback. The router
counts the requests its handlers see, so a request smuggled after a refused one would show.
"""

from __future__ import annotations

import re
import socket
from collections.abc import Iterator

import pytest

from daemon.http import HttpServer, Request, Response, Router
from daemon.httpwire import MAX_HEAD, MAX_HEADERS
from daemon.webconfig import WebConfig


class Seen:
    """The requests the handlers served."""

    def __init__(self) -> None:
        self.requests: list[tuple[str, str, int]] = []

    def handler(self, request: Request) -> Response:
        self.requests.append((request.method, request.path, len(request.body)))
        return Response.text(f"{request.method} {request.path} {len(request.body)}\n")


@pytest.fixture
def served() -> Iterator[tuple[HttpServer, Seen]]:
    seen = Seen()
    router = Router()
    router.add("GET", "/metrics", seen.handler)
    router.add("POST", "/echo", seen.handler)
    server = HttpServer("127.0.0.1", 0, WebConfig(), router)
    server.start()
    yield server, seen
    server.stop()


def _exchange(server: HttpServer, data: bytes) -> bytes:
    """Send the bytes, then read until the server closes the connection (10 s at most)."""
    with socket.create_connection(("127.0.0.1", server.port), timeout=10) as sock:
        sock.sendall(data)
        received = b""
        while chunk := sock.recv(65536):
            received += chunk
        return received


def _statuses(received: bytes) -> list[int]:
    return [int(code) for code in re.findall(rb"(?:^|\n)HTTP/1\.1 (\d{3}) ", received)]


SMUGGLED = b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n"

CASES = {
    "negative Content-Length": b"POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: -1\r\n\r\n" + SMUGGLED,
    "conflicting Content-Length": b"POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\nContent-Length: 40\r\n\r\n"
    + b"abc"
    + SMUGGLED,
    "Content-Length list that disagrees": b"POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 3, 4\r\n\r\nabc"
    + SMUGGLED,
    "Content-Length with a sign": b"POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: +3\r\n\r\nabc" + SMUGGLED,
    "chunked body": b"POST /echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
    + f"{len(SMUGGLED):x}\r\n".encode()
    + SMUGGLED
    + b"\r\n0\r\n\r\n",
    "chunked and Content-Length": b"POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 4\r\nTransfer-Encoding: chunked"
    b"\r\n\r\n0\r\n\r\n" + SMUGGLED,
    "obsolete line folding": b"GET /metrics HTTP/1.1\r\nHost: x\r\nX-A: 1\r\n folded\r\n\r\n" + SMUGGLED,
    "space before the colon": b"GET /metrics HTTP/1.1\r\nHost: x\r\nContent-Length : 5\r\n\r\n" + SMUGGLED,
    "two Host headers": b"GET /metrics HTTP/1.1\r\nHost: x\r\nHost: y\r\n\r\n" + SMUGGLED,
    "no Host in HTTP/1.1": b"GET /metrics HTTP/1.1\r\n\r\n" + SMUGGLED,
    "absolute-form target": b"GET http://evil/metrics HTTP/1.1\r\nHost: x\r\n\r\n" + SMUGGLED,
    "bare LF request line": b"GET /metrics HTTP/1.1\nHost: x\r\n\r\n" + SMUGGLED,
    "a body after a 404": b"POST /nowhere HTTP/1.1\r\nHost: x\r\nContent-Length: "
    + str(len(SMUGGLED)).encode()
    + b"\r\n\r\n"
    + SMUGGLED,
    "a body after a 405": b"PUT /metrics HTTP/1.1\r\nHost: x\r\nContent-Length: "
    + str(len(SMUGGLED)).encode()
    + b"\r\n\r\n"
    + SMUGGLED,
}


@pytest.mark.parametrize("case", list(CASES))
def test_malformed_framing_is_refused_and_closes(served: tuple[HttpServer, Seen], case: str) -> None:
    server, seen = served
    received = _exchange(server, CASES[case])
    statuses = _statuses(received)
    assert len(statuses) == 1, f"exactly one answer, then the connection closes: {received!r}"
    assert 400 <= statuses[0] < 500, received
    assert b"Connection: close" in received
    assert seen.requests == [], "no handler saw the smuggled request"


def test_a_huge_content_length_is_refused_without_reading(served: tuple[HttpServer, Seen]) -> None:
    server, seen = served
    received = _exchange(server, b"POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 1073741824\r\n\r\nabc")
    assert _statuses(received) == [413] and seen.requests == []


def test_header_count_and_size_are_capped(served: tuple[HttpServer, Seen]) -> None:
    server, seen = served
    many = b"".join(b"X-H%d: v\r\n" % i for i in range(MAX_HEADERS + 1))
    assert _statuses(_exchange(server, b"GET /metrics HTTP/1.1\r\nHost: x\r\n" + many + b"\r\n")) == [431]
    big = b"X-Big: " + b"a" * MAX_HEAD + b"\r\n"
    assert _statuses(_exchange(server, b"GET /metrics HTTP/1.1\r\nHost: x\r\n" + big + b"\r\n")) == [431]
    assert seen.requests == []


def test_well_formed_requests_still_work_pipelined_and_with_a_body(served: tuple[HttpServer, Seen]) -> None:
    server, seen = served
    body = b"x" * 1000
    data = (
        b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n"
        + b"POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 1000\r\nContent-Length: 1000\r\n\r\n"
        + body
        + b"GET /metrics HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
    )
    received = _exchange(server, data)
    assert _statuses(received) == [200, 200, 200]
    assert seen.requests == [("GET", "/metrics", 0), ("POST", "/echo", 1000), ("GET", "/metrics", 0)]
