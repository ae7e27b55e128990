"""A large answer reaches its reader whole before the listener closes the connection.

Regression: CI's benchmark run read 15,460,136 of 15,488,882 bytes of /metrics. The listener
waited for `drain()`, which returns once the transport's buffer is under its low-water mark (not
empty), and then aborted a connection that still had bytes to send ("Connection: close"). On
this machine's loopback the kernel's send buffer is large enough to hide it; CI's was not. The
listening socket here gets a small send buffer (accepted sockets inherit it), so the transport
always holds bytes when the last write returns.
"""

from __future__ import annotations

import socket
from collections.abc import Iterator

import pytest

from daemon.http import HttpServer, Request, Response, Router
from daemon.webconfig import WebConfig

BODY = bytes(range(256)) * (4 * 1024 * 1024 // 256 + 7)  # 4 MiB and a bit: not a multiple of any chunk


@pytest.fixture
def server() -> Iterator[HttpServer]:
    router = Router()

    def big(_request: Request) -> Response:
        return Response(200, BODY, "application/octet-stream")

    router.add("GET", "/big", big)
    listener = HttpServer("127.0.0.1", 0, WebConfig(), router)
    listener.engine.socket.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 4096)
    listener.start()
    yield listener
    listener.stop()


def _read_all(port: int, request: bytes) -> bytes:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        sock.settimeout(60)
        sock.connect(("127.0.0.1", port))
        sock.sendall(request)
        received = bytearray()
        while chunk := sock.recv(4096):
            received += chunk
        return bytes(received)


@pytest.mark.parametrize("version", ["HTTP/1.1", "HTTP/1.0"])
def test_every_byte_of_a_large_answer_arrives_before_the_close(server: HttpServer, version: str) -> None:
    closing = "Connection: close\r\n" if version == "HTTP/1.1" else ""
    request = f"GET /big {version}\r\nHost: 127.0.0.1\r\n{closing}\r\n".encode()
    for _ in range(3):
        head, _, body = _read_all(server.port, request).partition(b"\r\n\r\n")
        assert f"Content-Length: {len(BODY)}".encode() in head
        assert len(body) == len(BODY)
        assert body == BODY
