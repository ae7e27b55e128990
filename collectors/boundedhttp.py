"""A requests adapter that reads every answer within a size cap and a deadline, whatever the peer does.

requests reads a body whole (`stream=False`) before anyone looks at it, and its timeout bounds
each socket read, not the exchange: a peer (or anything at its address) that sends a 500 MB or an
endless chunked body, or one byte a second, holds the reading thread and fills memory, before any
credential is checked (authentication hooks read the 401's body too). This adapter:

* lets the body be read as usual (authentication hooks read it, and look at the socket for channel
  binding), but through `BoundedResponse`: at most `max_body` bytes (one byte more means "too
  large": the connection is closed and `AnswerTooLarge` raised);
* refuses content codings (it asks for `identity`): a small compressed body can inflate a
  thousandfold;
* ends the exchange at the deadline: the shared watchdog shuts the connection's socket down,
  which wakes a read blocked in the headers or the body, and the failure becomes a read timeout.

The deadline is the earlier of `deadline` (monotonic, set by the caller before each exchange)
and the timeout requests passes for this one exchange.
"""

from __future__ import annotations

import time
import weakref
from collections.abc import Mapping
from typing import Any

import requests
import urllib3.exceptions
from requests.adapters import HTTPAdapter
from urllib3.connectionpool import HTTPConnectionPool, HTTPSConnectionPool
from urllib3.response import HTTPResponse

from collectors import watchdog

READ_SIZE = 65536


class AnswerTooLarge(requests.exceptions.ContentDecodingError):
    """The peer's answer is larger than the cap: not what this protocol sends."""


class DeadlinePassed(requests.exceptions.ReadTimeout):
    """No whole answer before the deadline (the watchdog closed the connection)."""


class _Bound:
    """What one answer may still use: bytes, time, and its watchdog handle."""

    def __init__(self, cap: int, ends: float, handle: int, aborted: list[bool]) -> None:
        self.cap = cap
        self.ends = ends
        self.handle: int | None = handle
        self.aborted = aborted
        self.read = 0

    def done(self) -> None:
        if self.handle is not None:
            watchdog.cancel(self.handle)
            self.handle = None


class BoundedResponse(HTTPResponse):
    """urllib3's response, reading at most the cap and never past the deadline (set on a live response)."""

    _bound: _Bound

    def supports_chunked_reads(self) -> bool:
        """No: urllib3's chunk reader bypasses `_raw_read`; http.client decodes chunks under it instead."""
        return False

    def _raw_read(self, amt: int | None = None, *, read1: bool = False) -> bytes:
        bound = self._bound
        if amt is None:
            # "Everything that is left": in pieces, so the cap applies before memory is spent.
            parts = bytearray()
            while piece := self._raw_read(READ_SIZE, read1=True):
                parts += piece
            return bytes(parts)
        if time.monotonic() >= bound.ends:
            self._give_up()
            raise DeadlinePassed("no whole answer before the deadline")
        try:
            data: bytes = super()._raw_read(min(amt, bound.cap - bound.read + 1), read1=read1)
        except Exception as err:
            bound.done()
            if bound.aborted:
                raise DeadlinePassed("no whole answer before the deadline") from err
            raise
        bound.read += len(data or b"")
        if bound.read > bound.cap:
            self._give_up()
            raise AnswerTooLarge(f"the answer is larger than {bound.cap} bytes")
        if not data or self._fp is None or getattr(self._fp, "closed", False):
            bound.done()
        return data

    def _give_up(self) -> None:
        self._bound.done()
        conn = self._connection
        if conn is not None:
            watchdog.shut_down(getattr(conn, "sock", None))  # the rest is never read: not reusable
        self.close()

    def release_conn(self) -> None:
        """Back to the pool: the answer is over, so is its deadline."""
        self._bound.done()
        super().release_conn()


class TrackedPool(HTTPConnectionPool):
    """An HTTP pool that remembers its connections, so the watchdog can shut them down."""

    def _new_conn(self) -> Any:
        conn = super()._new_conn()
        tracked = self.__dict__.setdefault("tracked", weakref.WeakSet())
        tracked.add(conn)
        return conn


class TrackedHTTPSPool(HTTPSConnectionPool):
    """The HTTPS twin of `TrackedPool`."""

    def _new_conn(self) -> Any:
        conn = super()._new_conn()
        tracked = self.__dict__.setdefault("tracked", weakref.WeakSet())
        tracked.add(conn)
        return conn


class BoundedAdapter(HTTPAdapter):
    """Every exchange: at most `max_body` bytes of body, and over at the deadline."""

    def __init__(self, max_body: int, pool_maxsize: int = 2, **kwargs: Any) -> None:
        self.max_body = max_body
        #: monotonic time by which any exchange must be over (None: only the per-exchange timeout)
        self.deadline: float | None = None
        super().__init__(pool_connections=1, pool_maxsize=pool_maxsize, **kwargs)

    def init_poolmanager(self, *args: Any, **kwargs: Any) -> None:
        """Pools that track their connections."""
        super().init_poolmanager(*args, **kwargs)
        self.poolmanager.pool_classes_by_scheme = {"http": TrackedPool, "https": TrackedHTTPSPool}

    def abort(self) -> None:
        """The deadline passed: wake every read on this adapter's connections in use (idle ones stay)."""
        pools = self.poolmanager.pools  # a container that refuses iteration: go by its keys
        for key in list(pools.keys()):
            pool = pools.get(key)
            idle = {id(c) for c in list(getattr(getattr(pool, "pool", None), "queue", ())) if c is not None}
            for conn in list(getattr(pool, "tracked", ())):
                if id(conn) not in idle:
                    watchdog.shut_down(getattr(conn, "sock", None))

    def _ends_at(self, timeout: Any) -> float:
        now = time.monotonic()
        limit = timeout[1] if isinstance(timeout, tuple) else timeout
        ends = now + float(limit) if limit is not None else now + 3600.0
        return min(ends, self.deadline) if self.deadline is not None else ends

    def send(  # noqa: PLR0917 - requests' HTTPAdapter.send signature
        self,
        request: requests.PreparedRequest,
        stream: bool = False,
        timeout: Any = None,
        verify: Any = True,
        cert: Any = None,
        proxies: Mapping[str, str] | None = None,
    ) -> requests.Response:
        """Send; the answer's body is read later (by hooks or requests) through `BoundedResponse`."""
        request.headers["Accept-Encoding"] = "identity"
        ends = self._ends_at(timeout)
        remaining = ends - time.monotonic()
        if remaining <= 0:
            raise DeadlinePassed("the deadline passed before the request was sent")
        aborted: list[bool] = []

        def abort() -> None:
            aborted.append(True)
            self.abort()

        handle = watchdog.watch(ends, abort)
        try:
            response = super().send(request, True, remaining, verify, cert, proxies)
        except (requests.RequestException, OSError, urllib3.exceptions.HTTPError) as err:
            watchdog.cancel(handle)
            if aborted:
                raise DeadlinePassed("no answer before the deadline") from err
            raise
        raw = response.raw
        bound = _Bound(self.max_body, ends, handle, aborted)
        try:
            self._check_headers(response)
        except (AnswerTooLarge, requests.ConnectionError):
            bound.done()
            watchdog.shut_down(getattr(getattr(raw, "_connection", None), "sock", None))
            raw.close()
            raise
        if isinstance(raw, HTTPResponse):
            raw.__class__ = BoundedResponse
            raw._bound = bound  # type: ignore[attr-defined]
        else:
            bound.done()
        return response

    def _check_headers(self, response: requests.Response) -> None:
        coding = response.headers.get("Content-Encoding", "identity").strip().lower()
        if coding not in ("", "identity"):
            raise AnswerTooLarge(f"the answer uses content coding {coding!r}, which was not asked for")
        announced_length(response.headers.get("Content-Length", ""), self.max_body)


def announced_length(field: str, cap: int) -> int | None:
    """The body length a Content-Length field announces (None without one), refused past `cap`.

    A value that is not ASCII digits is a malformed answer (requests.ConnectionError, as urllib3 reports
    one): str.isdigit() is also true for '²' (a latin-1 header byte), which int() refuses.
    """
    length = field.strip()
    if not length:
        return None
    if not (length.isascii() and length.isdigit()):
        raise requests.ConnectionError(f"the answer's Content-Length is not a number: {length[:40]!r}")
    if int(length) > cap:
        raise AnswerTooLarge(f"the answer announces {int(length)} bytes; at most {cap} are accepted")
    return int(length)
