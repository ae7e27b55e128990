"""The answer reader of the direct WinRM exchange, against a real peer socket on loopback.

The hostile cases a node can play after the logon (huge, endless chunked, trickling) run through the
whole collector in tests/security/test_hostile_winrm.py; here each framing an HTTP/1.1 server may use.
"""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator

import pytest
import requests

from collectors.boundedhttp import AnswerTooLarge, DeadlinePassed
from collectors.winrm.rawhttp import MAX_FIELDS, read_answer, request_head

CAP = 4096


@pytest.fixture
def peer() -> Iterator[tuple[socket.socket, socket.socket]]:
    """A connected TCP pair on loopback: (client, server)."""
    with socket.create_server(("127.0.0.1", 0)) as listener:
        client = socket.create_connection(listener.getsockname())
        server, _ = listener.accept()
    try:
        yield client, server
    finally:
        client.close()
        server.close()


def _send(server: socket.socket, *pieces: bytes, pause: float = 0.0, close: bool = False) -> threading.Thread:
    def run() -> None:
        for piece in pieces:
            server.sendall(piece)
            if pause:
                time.sleep(pause)  # a slow peer, not a wait for an event
        if close:
            server.shutdown(socket.SHUT_WR)

    thread = threading.Thread(target=run)
    thread.start()
    return thread


def _read(client: socket.socket, seconds: float = 10.0) -> tuple[int, str, dict[str, str], bytes, bool]:
    code, reason, fields, body, closes = read_answer(client, time.monotonic() + seconds, CAP)
    return code, reason, dict(fields), body, closes


def test_content_length_answer_keeps_the_connection(peer: tuple[socket.socket, socket.socket]) -> None:
    client, server = peer
    _send(server, b"HTTP/1.1 200 OK\r\nContent-Type: a/b\r\nContent-Length: 5\r\n\r\nhel", b"lo").join()
    assert _read(client) == (200, "OK", {"Content-Type": "a/b", "Content-Length": "5"}, b"hello", False)


def test_chunked_answer_with_trailer_and_interim_answer(peer: tuple[socket.socket, socket.socket]) -> None:
    client, server = peer
    _send(
        server,
        b"HTTP/1.1 100 Continue\r\n\r\n",
        b"HTTP/1.1 500 Internal Server Error\r\nTransfer-Encoding: chunked\r\nX-A: 1\r\nx-a: 2\r\n\r\n",
        b"4;ext=1\r\nfaul\r\n1\r\nt\r\n0\r\nTrailer: yes\r\n\r\n",
    ).join()
    code, reason, fields, body, closes = _read(client)
    assert (code, reason, body, closes) == (500, "Internal Server Error", b"fault", False)
    assert {name.lower(): value for name, value in fields.items()}["x-a"] == "1, 2"  # repeated fields joined


def test_connection_close_and_body_until_close(peer: tuple[socket.socket, socket.socket]) -> None:
    client, server = peer
    _send(server, b"HTTP/1.1 200 OK\r\nConnection: close\r\n\r\nall of it", close=True).join()
    assert _read(client)[3:] == (b"all of it", True)


def test_no_body_statuses_and_leftover_bytes_close(peer: tuple[socket.socket, socket.socket]) -> None:
    client, server = peer
    _send(server, b"HTTP/1.1 204 No Content\r\n\r\nHTTP/1.1 200 OK\r\n").join()
    code, _, _, body, closes = _read(client)
    assert (code, body, closes) == (204, b"", True)  # bytes after the answer: the connection is not reused


@pytest.mark.parametrize(
    ("answer", "message"),
    [
        (b"HTTP/1.1 200 OK\r\nContent-Length: 999999\r\n\r\n", "announces 999999 bytes"),
        (
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n" + (b"800\r\n" + b"x" * 2048 + b"\r\n") * 3,
            f"larger than {CAP} bytes",
        ),
        (b"HTTP/1.1 200 OK\r\nContent-Encoding: gzip\r\nContent-Length: 3\r\n\r\nabc", "content coding 'gzip'"),
        (b"HTTP/1.1 200 OK\r\n" + b"X-F: 1\r\n" * (MAX_FIELDS + 1) + b"\r\n", "more than 100 header fields"),
        (b"HTTP/1.1 200 OK\r\nX: " + b"y" * 70000, "head is larger than"),
    ],
    ids=["announced", "chunked-growing", "coding", "fields", "head"],
)
def test_answers_past_the_bounds_are_refused(
    peer: tuple[socket.socket, socket.socket], answer: bytes, message: str
) -> None:
    client, server = peer
    sender = _send(server, answer)
    with pytest.raises(AnswerTooLarge, match=message):
        _read(client)
    sender.join()


@pytest.mark.parametrize(
    "answer",
    [
        b"SSH-2.0-OpenSSH\r\n\r\n",
        b"HTTP/1.1 200 OK\r\nno colon here\r\n\r\n",
        b"HTTP/1.1 200 OK\r\nContent-Length: x\r\n\r\n",
        b"HTTP/1.1 200 OK\r\nContent-Length: \xb2\r\n\r\n",  # a superscript two: a digit to str.isdigit
        b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nContent-Length: 2\r\n\r\nok",
    ],
    ids=["not-http", "field", "length", "latin-1-digit", "two-lengths"],
)
def test_malformed_answers_are_connection_errors(peer: tuple[socket.socket, socket.socket], answer: bytes) -> None:
    client, server = peer
    _send(server, answer).join()
    with pytest.raises(requests.ConnectionError):
        _read(client)


def test_closed_mid_answer_is_a_connection_error(peer: tuple[socket.socket, socket.socket]) -> None:
    client, server = peer
    _send(server, b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nabc", close=True).join()
    with pytest.raises(requests.ConnectionError, match="before the end"):
        _read(client)


def test_a_trickle_ends_at_the_deadline(peer: tuple[socket.socket, socket.socket]) -> None:
    client, server = peer
    sender = _send(server, *[bytes([c]) for c in b"HTTP/1.1 200 OK\r\n"], pause=0.2)
    started = time.monotonic()
    with pytest.raises(DeadlinePassed, match="deadline"):
        _read(client, seconds=1.0)
    assert time.monotonic() - started < 10
    sender.join()


def test_request_head_names_the_host_first() -> None:
    headers = requests.structures.CaseInsensitiveDict({"Host": "ignored", "Content-Length": "3", "X": "y"})
    assert request_head("http://[::1]:5985/wsman", headers) == (
        b"POST /wsman HTTP/1.1\r\nHost: [::1]:5985\r\nContent-Length: 3\r\nX: y\r\n\r\n"
    )
