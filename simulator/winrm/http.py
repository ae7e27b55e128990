"""A small HTTP/1.1 server on asyncio streams: keep-alive connections with per-connection state.

WinRM needs what most Python HTTP servers hide: NTLM authenticates the TCP connection, so the
handler must see which connection a request arrived on, and keep-alive must really keep it.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

MAX_HEADER_BYTES = 64 * 1024
MAX_BODY_BYTES = 16 * 1024 * 1024
REASONS = {200: "OK", 400: "Bad Request", 401: "Unauthorized", 404: "Not Found", 405: "Method Not Allowed"}
REASONS |= {411: "Length Required", 413: "Payload Too Large", 500: "Internal Server Error"}


class Headers:
    """Case-insensitive header lookup, keeping every value of a repeated header."""

    def __init__(self, items: list[tuple[str, str]]) -> None:
        self.items = items

    def get(self, name: str, default: str = "") -> str:
        """The first value of a header."""
        lowered = name.lower()
        return next((v for k, v in self.items if k.lower() == lowered), default)


@dataclass
class Request:
    """One HTTP request."""

    method: str
    path: str
    headers: Headers
    body: bytes


@dataclass
class Response:
    """One HTTP response; the server adds Content-Length and Server."""

    status: int
    body: bytes = b""
    headers: list[tuple[str, str]] = field(default_factory=list)
    close: bool = False


@dataclass
class Connection:
    """A client connection and whatever the handler keeps on it (the NTLM context)."""

    peer: str
    tls: bool
    state: dict[str, Any] = field(default_factory=dict)


Handler = Callable[[Connection, Request], Awaitable[Response | None]]


class BadRequest(Exception):
    """The bytes on the wire are not an HTTP/1.1 request we accept."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


async def read_request(reader: asyncio.StreamReader) -> Request | None:
    """Read one request; None when the client closed the connection between requests."""
    try:
        head = await reader.readuntil(b"\r\n\r\n")
    except asyncio.IncompleteReadError as err:
        if not err.partial.strip():
            return None
        raise BadRequest(400, "incomplete request head") from err
    except asyncio.LimitOverrunError as err:
        raise BadRequest(400, "request head too large") from err
    lines = head.decode("iso-8859-1").split("\r\n")
    parts = lines[0].split(" ")
    if len(parts) != 3 or not parts[2].startswith("HTTP/1."):
        raise BadRequest(400, f"bad request line {lines[0]!r}")
    items = []
    for line in lines[1:]:
        if not line:
            continue
        name, sep, value = line.partition(":")
        if not sep:
            raise BadRequest(400, f"bad header line {line!r}")
        items.append((name.strip(), value.strip()))
    headers = Headers(items)
    if headers.get("Transfer-Encoding"):
        raise BadRequest(411, "chunked requests are not supported; send Content-Length")
    length_text = headers.get("Content-Length", "0") or "0"
    if not length_text.isdigit():
        raise BadRequest(400, "bad Content-Length")
    length = int(length_text)
    if length > MAX_BODY_BYTES:
        raise BadRequest(413, "request body too large")
    body = await reader.readexactly(length) if length else b""
    return Request(parts[0], parts[1], headers, body)


def encode_response(response: Response) -> bytes:
    """Status line, headers and body."""
    reason = REASONS.get(response.status, "Unknown")
    lines = [f"HTTP/1.1 {response.status} {reason}", "Server: Microsoft-HTTPAPI/2.0"]
    lines += [f"{k}: {v}" for k, v in response.headers]
    lines.append(f"Content-Length: {len(response.body)}")
    if response.close:
        lines.append("Connection: close")
    return ("\r\n".join(lines) + "\r\n\r\n").encode("iso-8859-1") + response.body


async def serve_connection(
    reader: asyncio.StreamReader,
    writer: asyncio.StreamWriter,
    handler: Handler,
    idle_timeout: Callable[[], float | None],
) -> None:
    """Answer requests on one connection until either side closes it."""
    peer = writer.get_extra_info("peername")
    connection = Connection(str(peer), writer.get_extra_info("sslcontext") is not None)
    try:
        while True:
            try:
                request = await asyncio.wait_for(read_request(reader), idle_timeout())
            except TimeoutError:
                return  # an idle keep-alive connection is closed by the server, as HTTP.sys does
            except BadRequest as err:
                writer.write(encode_response(Response(err.status, str(err).encode(), close=True)))
                await writer.drain()
                return
            if request is None:
                return
            response = await handler(connection, request)
            if response is None:
                return
            writer.write(encode_response(response))
            await writer.drain()
            if response.close or request.headers.get("Connection").lower() == "close":
                return
    except (ConnectionError, asyncio.IncompleteReadError, OSError):
        return
    finally:
        writer.close()
        with contextlib.suppress(Exception):
            # A TLS close waits for the client's close_notify, which an idle pooled client never sends.
            await asyncio.wait_for(writer.wait_closed(), 1.0)
        writer.transport.abort()
