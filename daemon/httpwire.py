"""HTTP/1.1 request framing, strictly: what the listener accepts, and the 4xx for everything else.

The request head (request line and header fields) must fit in `MAX_HEAD` bytes and
`MAX_HEADERS` fields. A body is framed by one Content-Length only (RFC 9112 section 6):
duplicate values that disagree, anything but digits, and Transfer-Encoding of any kind are
refused with 400, and the connection is closed after every refusal, so the bytes that follow
a refused request are never read as another request (request smuggling).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

MAX_HEAD = 16 * 1024
MAX_HEADERS = 100
MAX_BODY = 1024 * 1024
METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "DELETE", "OPTIONS", "PATCH", "TRACE", "CONNECT"})
_TOKEN = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")
_TARGET = re.compile(r"/[\x21-\x7e]*")
_FIELD_VALUE = re.compile(r"[\t\x20-\x7e\x80-\xff]*")
_DIGITS = re.compile(r"[0-9]{1,19}")


class FramingError(Exception):
    """A request the listener refuses before any handler sees it; the connection then closes."""

    def __init__(self, status: int, reason: str) -> None:
        super().__init__(reason)
        self.status = status
        self.reason = reason


@dataclass(frozen=True)
class RequestHead:
    """A request line and its header fields (names lower-cased, repeated fields joined by ', ')."""

    method: str
    target: str
    version: str
    headers: dict[str, str]
    content_length: int

    @property
    def keep_alive(self) -> bool:
        """Whether the client lets the connection serve another request."""
        tokens = {t.strip().lower() for t in self.headers.get("connection", "").split(",")}
        if self.version == "HTTP/1.0":
            return "keep-alive" in tokens
        return "close" not in tokens

    @property
    def expects_continue(self) -> bool:
        """True when the client waits for `100 Continue` before sending its body."""
        return self.headers.get("expect", "").strip().lower() == "100-continue"


def parse_head(raw: bytes) -> RequestHead:
    """Parse a request head (without the final blank line); FramingError names what is wrong."""
    text = raw.decode("latin-1")
    lines = text.split("\r\n")
    request_line = lines[0]
    parts = request_line.split(" ")
    if len(parts) != 3:
        raise FramingError(400, "malformed request line")
    method, target, version = parts
    if version not in ("HTTP/1.1", "HTTP/1.0"):
        if version.startswith("HTTP/"):
            raise FramingError(505, f"HTTP version {version[5:20]!r} is not supported")
        raise FramingError(400, "malformed request line")
    if not _TOKEN.fullmatch(method):
        raise FramingError(400, "malformed method")
    if method not in METHODS:
        raise FramingError(501, "method not implemented")
    if not _TARGET.fullmatch(target):
        raise FramingError(400, "malformed request target (an absolute path is expected)")
    fields = lines[1:]
    if len(fields) > MAX_HEADERS:
        raise FramingError(431, f"more than {MAX_HEADERS} header fields")
    headers: dict[str, str] = {}
    lengths: list[str] = []
    for line in fields:
        name, colon, value = line.partition(":")
        if not colon or not _TOKEN.fullmatch(name):
            # Includes obsolete line folding (a line starting with a space) and a space before the colon.
            raise FramingError(400, "malformed header field")
        value = value.strip(" \t")
        if not _FIELD_VALUE.fullmatch(value):
            raise FramingError(400, "control characters in a header field")
        key = name.lower()
        if key == "host" and key in headers:
            raise FramingError(400, "more than one Host header")
        if key == "content-length":
            lengths.extend(v.strip(" \t") for v in value.split(","))
        headers[key] = f"{headers[key]}, {value}" if key in headers else value
    if "transfer-encoding" in headers:
        raise FramingError(400, "Transfer-Encoding is not supported; send a Content-Length")
    if version == "HTTP/1.1" and not headers.get("host"):
        raise FramingError(400, "request without a Host header (required in HTTP/1.1)")
    length = 0
    if lengths:
        if len(set(lengths)) != 1 or not _DIGITS.fullmatch(lengths[0]):
            raise FramingError(400, "invalid or conflicting Content-Length")
        length = int(lengths[0])
        if length > MAX_BODY:
            raise FramingError(413, f"request body larger than {MAX_BODY} bytes")
    return RequestHead(method, target, version, headers, length)
