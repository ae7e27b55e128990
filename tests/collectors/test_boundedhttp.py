"""collectors/boundedhttp.py against a raw loopback peer: announced lengths are checked before any body is read."""

from __future__ import annotations

import socket
import threading
from collections.abc import Iterator

import pytest
import requests

from collectors.boundedhttp import AnswerTooLarge, BoundedAdapter

CAP = 4096


@pytest.fixture
def answering() -> Iterator[tuple[list[bytes], str]]:
    """A loopback peer that reads one request head and sends the bytes put in the list, then closes."""
    answers: list[bytes] = []
    listener = socket.create_server(("127.0.0.1", 0))

    def serve() -> None:
        conn, _ = listener.accept()
        with conn:
            seen = b""
            while b"\r\n\r\n" not in seen:
                piece = conn.recv(4096)
                if not piece:
                    return
                seen += piece
            conn.sendall(answers[0])
            conn.shutdown(socket.SHUT_WR)

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    host, port = listener.getsockname()
    try:
        yield answers, f"http://{host}:{port}/wsman"
    finally:
        listener.close()
        thread.join(10)


def _get(url: str) -> requests.Response:
    session = requests.Session()
    session.trust_env = False
    session.mount("http://", BoundedAdapter(CAP))
    with session:
        return session.get(url, timeout=10)


def test_an_announced_length_past_the_cap_is_refused_before_the_body(answering: tuple[list[bytes], str]) -> None:
    answers, url = answering
    answers.append(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n" % (CAP + 1))
    with pytest.raises(AnswerTooLarge, match=f"announces {CAP + 1} bytes"):
        _get(url)


@pytest.mark.parametrize(
    "length", [b"\xb2", b"1\xb9", b"12x"], ids=["superscript-two", "one-superscript-one", "letter"]
)
def test_a_length_that_is_not_ascii_digits_is_refused(answering: tuple[list[bytes], str], length: bytes) -> None:
    """Header bytes arrive as latin-1: b'\\xb2' is '²', for which str.isdigit() is true and int() raises.

    The answer is refused as malformed, as the direct exchange (rawhttp.py) refuses it, not a ValueError from the check.
    """
    answers, url = answering
    answers.append(b"HTTP/1.1 200 OK\r\nContent-Length: " + length + b"\r\nConnection: close\r\n\r\nok")
    with pytest.raises(requests.ConnectionError, match="Content-Length is not a number"):
        _get(url)
