"""One HTTP/1.1 exchange on a node's logged-on keep-alive connection, read within the same bounds as BoundedAdapter.

After the logon every WinRM message is a POST of a sealed body on the same connection (NTLM and
Kerberos authenticate the connection, not the request). Going through requests and urllib3 for
each of them (adapter, pool bookkeeping, http.client's header parsing through the email package,
the body read in 10 KiB pieces) was the largest single part of the collector's CPU per node
(benchmarks/bench_winrm.py --profile). `exchange` writes the request on the pooled connection's
socket and reads the answer itself:

* the head (status line and fields) at most 64 KiB and 100 fields; 1xx interim answers skipped;
* the body at most `cap` bytes: an announced Content-Length above the cap, a chunked body growing
  past it, or a body read until the connection closes growing past it raise `AnswerTooLarge` (the
  messages BoundedAdapter uses); a content coding is refused (none was asked for);
* nothing past the deadline: each read waits at most the time left, and the shared watchdog shuts
  the socket down at the deadline (a node trickling a byte at a time) - `DeadlinePassed`;
* the connection goes back to its pool after a whole answer, closed when the node said
  `Connection: close`, when the body ran until the close, or after any failure.

When the pool has no logged-on connection at hand (the node closed it), `exchange` returns None
and the caller sends through the adapter as before (the node then asks for a new logon).
"""

from __future__ import annotations

import time
from typing import Any
from urllib.parse import urlsplit

import requests
from requests.structures import CaseInsensitiveDict

from collectors import watchdog
from collectors.boundedhttp import AnswerTooLarge, DeadlinePassed, announced_length

MAX_HEAD = 64 * 1024
MAX_FIELDS = 100
MAX_INTERIM = 4
READ_SIZE = 65536
_NO_BODY = (204, 304)


class _Reader:
    """Reads from one socket, never past `ends`, at most `cap` body bytes."""

    def __init__(self, sock: Any, ends: float, cap: int, aborted: list[bool]) -> None:
        self.sock = sock
        self.ends = ends
        self.cap = cap
        self.aborted = aborted
        self.buffer = bytearray()
        self._scratch = bytearray(READ_SIZE)

    def _recv_into(self, view: memoryview) -> int:
        """One read into `view`, waiting at most until the deadline; 0 at the end of the stream."""
        remaining = self.ends - time.monotonic()
        if remaining <= 0 or self.aborted:
            raise DeadlinePassed("no whole answer before the deadline")
        self.sock.settimeout(remaining)
        try:
            count: int = self.sock.recv_into(view)
        except TimeoutError as err:
            raise DeadlinePassed("no whole answer before the deadline") from err
        except OSError as err:
            if self.aborted:
                raise DeadlinePassed("no whole answer before the deadline") from err
            raise requests.ConnectionError(f"the node's connection broke: {err}") from err
        if not count and self.aborted:
            raise DeadlinePassed("no whole answer before the deadline")
        return count

    def _fill(self) -> bool:
        """One more read into the buffer; False at the end of the stream."""
        with memoryview(self._scratch) as piece:
            count = self._recv_into(piece)
            if not count:
                return False
            self.buffer += piece[:count]
        return True

    def line(self, limit: int) -> bytes:
        """One CRLF-terminated line (without the CRLF), at most `limit` bytes."""
        while True:
            end = self.buffer.find(b"\r\n")
            if end >= 0:
                line = bytes(self.buffer[:end])
                del self.buffer[: end + 2]
                return line
            if len(self.buffer) > limit:
                raise AnswerTooLarge(f"the answer's head is larger than {limit} bytes")
            if not self._fill():
                raise requests.ConnectionError("the node closed the connection in the middle of its answer")

    def exactly(self, count: int) -> bytes | bytearray:
        """The next `count` bytes (read into one buffer of that size, returned as is: a Receive answer is large)."""
        have = len(self.buffer)
        if have >= count:
            data = bytes(memoryview(self.buffer)[:count])
            del self.buffer[:count]
            return data
        out = bytearray(count)
        out[:have] = self.buffer
        self.buffer.clear()
        view = memoryview(out)
        while have < count:
            got = self._recv_into(view[have:])
            if not got:
                raise requests.ConnectionError("the node closed the connection before the end of its answer")
            have += got
        view.release()
        return out

    def until_close(self) -> bytes:
        """Everything until the node closes the connection, at most the cap."""
        while len(self.buffer) <= self.cap:
            if not self._fill():
                data = bytes(self.buffer)
                self.buffer.clear()
                return data
        raise AnswerTooLarge(f"the answer is larger than {self.cap} bytes")

    def head(self) -> tuple[int, str, CaseInsensitiveDict[str]]:
        """Status code, reason and fields of the final answer (interim 1xx answers skipped)."""
        for _ in range(MAX_INTERIM + 1):
            budget = MAX_HEAD
            status = self.line(budget)
            budget -= len(status)
            parts = status.split(None, 2)
            if len(parts) < 2 or not parts[0].startswith(b"HTTP/1.") or not (parts[1].isdigit() and len(parts[1]) == 3):
                raise requests.ConnectionError(f"the node's answer is not HTTP: {status[:80]!r}")
            code = int(parts[1])
            reason = parts[2].decode("latin-1") if len(parts) > 2 else ""
            fields: CaseInsensitiveDict[str] = CaseInsensitiveDict()
            for _count in range(MAX_FIELDS + 1):
                raw = self.line(budget)
                budget -= len(raw) + 2
                if not raw:
                    break
                name, colon, value = raw.partition(b":")
                if not colon or not name or name != name.strip():
                    raise requests.ConnectionError(f"the node's answer has a malformed header field: {raw[:80]!r}")
                text = value.strip().decode("latin-1")
                key = name.decode("latin-1")
                fields[key] = f"{fields[key]}, {text}" if key in fields else text
            else:
                raise AnswerTooLarge(f"the answer has more than {MAX_FIELDS} header fields")
            if not 100 <= code < 200:
                return code, reason, fields
        raise requests.ConnectionError(f"the node sent more than {MAX_INTERIM} interim answers")

    def body(self, code: int, fields: CaseInsensitiveDict[str]) -> tuple[bytes | bytearray, bool]:
        """The body, and whether the connection ends with it."""
        coding = fields.get("Content-Encoding", "identity").strip().lower()
        if coding not in ("", "identity"):
            raise AnswerTooLarge(f"the answer uses content coding {coding!r}, which was not asked for")
        closes = "close" in fields.get("Connection", "").lower()
        if code in _NO_BODY:
            return b"", closes
        transfer = fields.get("Transfer-Encoding", "").strip().lower()
        if transfer:
            if transfer != "chunked":
                raise requests.ConnectionError(f"the answer uses transfer coding {transfer!r}")
            return self._chunked(), closes
        length = announced_length(fields.get("Content-Length", ""), self.cap)
        if length is not None:
            return self.exactly(length), closes
        return self.until_close(), True

    def _chunked(self) -> bytes:
        parts: list[bytes | bytearray] = []
        total = 0
        while True:
            size_text = self.line(1024).split(b";", 1)[0].strip()
            try:
                size = int(size_text, 16)
            except ValueError as err:
                raise requests.ConnectionError(f"malformed chunk size {size_text[:40]!r}") from err
            if size < 0:
                raise requests.ConnectionError("negative chunk size")
            total += size
            if total > self.cap:
                raise AnswerTooLarge(f"the answer is larger than {self.cap} bytes")
            if size == 0:
                for _ in range(MAX_FIELDS + 1):  # trailer fields, up to the empty line
                    if not self.line(MAX_HEAD):
                        return b"".join(parts)
                raise AnswerTooLarge(f"the answer has more than {MAX_FIELDS} trailer fields")
            parts.append(self.exactly(size))
            if self.exactly(2) != b"\r\n":
                raise requests.ConnectionError("a chunk does not end with CRLF")


def read_answer(
    sock: Any, ends: float, cap: int, aborted: list[bool] | None = None
) -> tuple[int, str, CaseInsensitiveDict[str], bytes | bytearray, bool]:
    """Status code, reason, fields and body of one answer, and whether the connection must be closed after it."""
    reader = _Reader(sock, ends, cap, aborted if aborted is not None else [])
    code, reason, fields = reader.head()
    content, closes = reader.body(code, fields)
    return code, reason, fields, content, closes or bool(reader.buffer)


def request_head(url: str, headers: CaseInsensitiveDict[str]) -> bytes:
    """The request line and fields of a POST to `url` (Host first, as http.client writes it)."""
    parts = urlsplit(url)
    lines = [f"POST {parts.path or '/'} HTTP/1.1", f"Host: {parts.netloc}"]
    lines += [f"{name}: {value}" for name, value in headers.items() if name.lower() != "host"]
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")


def exchange(pool: Any, data: bytes, timeout: float, deadline: float | None, cap: int) -> requests.Response | None:
    """Send `data` (head and body) on the pool's logged-on connection and read the answer; None: no such connection.

    The exchange ends `timeout` seconds from now or at monotonic time `deadline`, whichever comes first.
    """
    conn = pool._get_conn()
    sock = getattr(conn, "sock", None)
    if sock is None:
        pool._put_conn(conn)
        return None
    now = time.monotonic()
    ends = now + float(timeout)
    if deadline is not None:
        ends = min(ends, deadline)
    aborted: list[bool] = []

    def abort() -> None:
        aborted.append(True)
        watchdog.shut_down(sock)

    handle = watchdog.watch(ends, abort)
    keep = False
    try:
        if ends - now <= 0:
            raise DeadlinePassed("the deadline passed before the request was sent")
        sock.settimeout(ends - now)
        try:
            sock.sendall(data)
        except TimeoutError as err:
            raise DeadlinePassed("the node did not take the request before the deadline") from err
        except OSError as err:
            raise requests.ConnectionError(f"the node's connection broke: {err}") from err
        code, reason, fields, content, closes = read_answer(sock, ends, cap, aborted)
        keep = not closes
    finally:
        watchdog.cancel(handle)
        if not keep:
            conn.close()
        pool._put_conn(conn)
    response = requests.Response()
    response.status_code = code
    response.reason = reason
    response.headers = fields
    # A Receive answer's body stays the buffer it was read into (requests keeps bytes there; nothing here writes to it).
    response._content = content  # type: ignore[assignment]
    response.encoding = None
    return response
