"""The listeners' connection engine: bounded connections, a deadline on every step, handlers on workers.

One asyncio loop per listener (a `selectors`-based loop on Linux, IOCP on Windows: no
`select()` and its 1,024-descriptor ceiling) reads request heads and bodies and writes
answers; handlers run on a few worker threads, so a slow handler never stalls the loop.

* **Connections are bounded.** The loop accepts a connection only when one of
  `max_connections` slots is free. When every slot is taken, the connection that has waited
  longest for a request (a slowloris, or an idle keep-alive), if it waited `EVICT_AFTER` at
  least, is closed to make room; otherwise new connections wait in the kernel's accept
  backlog (first come, first served) until a connection finishes or may be closed. A
  legitimate scraper, whose request arrives at once, is therefore
  never starved by slow or idle connections. The cap leaves `fd_reserve` descriptors of the
  process's limit to the collectors (`connection_cap`).
* **Every step has a deadline:** the TLS handshake, the request head (`head_seconds`, whatever
  the pace of the bytes), the body, the wait for the next request on a kept-alive
  connection, and writing the answer.
* **Memory per connection is bounded** by the head limit (`daemon.httpwire.MAX_HEAD`; the
  reader stops reading from the socket at twice that) and the body limit (`MAX_BODY`), and
  answers are written in chunks at the pace of the reader.
* Framing is strict (`daemon.httpwire`); after any refused request the connection closes.

Why this and not a server library: it needs nothing beyond the standard library, runs the
same on Windows and Linux, keeps the exporter-toolkit web config (TLS, client certificates,
basic auth) in `ssl` and our own code, and benchmarks/bench_http.py measures it against the
standard library's threaded server under the attacks above. Libraries such as cheroot or
hypercorn were considered but not measured against the same attacks.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import queue
import socket
import ssl
import threading
import time
from collections.abc import Callable, Mapping
from concurrent.futures import Future
from dataclasses import dataclass, field
from functools import partial
from http import HTTPStatus
from typing import Any, Protocol

from daemon.bodyparts import Parts
from daemon.httplimits import Limits, connection_cap
from daemon.httpwire import MAX_HEAD, FramingError, RequestHead, parse_head

__all__ = ["Engine", "Incoming", "Limits", "Reply", "connection_cap"]

log = logging.getLogger("certmon.http")

WRITE_CHUNK = 256 * 1024
# A connection is closed to make room only once it has waited this long for its request: a client
# that sends its request at once (a scraper) is never closed for a crowd that connected just after it.
EVICT_AFTER = 0.25
# ... and a connection that has sent nothing at all, once it waited this long.
EVICT_SILENT_AFTER = 2.0
# After refusing a request, how long and how much of what the client still sends is read and dropped.
LINGER_SECONDS = 1.0
LINGER_BYTES = 1024 * 1024


class Reply(Protocol):
    """What a handler answers (daemon.http.Response)."""

    status: int
    content_type: str
    headers: dict[str, str]

    @property
    def body(self) -> bytes | Parts:
        """bytes, or parts sent one after another."""


@dataclass(frozen=True)
class Incoming:
    """A framed request and where it came from."""

    head: RequestHead
    body: bytes
    peer: str
    #: the TLS layer's view of the client certificate: (getpeercert(), DER), or None
    client_cert: tuple[dict[str, Any], bytes] | None


Dispatch = Callable[[Incoming], Reply]


class _Workers:
    """A fixed set of daemon threads running handlers: one that hangs never blocks the process's exit."""

    def __init__(self, count: int, name: str) -> None:
        self._jobs: queue.SimpleQueue[tuple[Callable[[], Any], Future[Any]] | None] = queue.SimpleQueue()
        self._threads = [threading.Thread(target=self._run, name=f"{name}-{i}", daemon=True) for i in range(count)]
        for thread in self._threads:
            thread.start()

    def submit(self, job: Callable[[], Any]) -> Future[Any]:
        future: Future[Any] = Future()
        self._jobs.put((job, future))
        return future

    def _run(self) -> None:
        while (item := self._jobs.get()) is not None:
            job, future = item
            if not future.set_running_or_notify_cancel():
                continue
            try:
                future.set_result(job())
            except BaseException as err:  # noqa: BLE001 - handed to the waiting connection
                future.set_exception(err)

    def close(self) -> None:
        for _ in self._threads:
            self._jobs.put(None)


def _close(conn: _Connection) -> None:
    """Close a connection now; one still in its TLS handshake is cancelled, which closes its socket."""
    if conn.transport is not None:
        conn.transport.abort()
    elif conn.task is not None:
        conn.task.cancel()


@dataclass(eq=False)
class _Connection:
    transport: asyncio.Transport | None = None
    task: asyncio.Task[None] | None = None
    reader: asyncio.StreamReader | None = None
    #: requests answered on this connection
    served: int = 0
    #: a request is being read past its head, handled or answered: not to be closed for room
    busy: bool = False
    waiting_since: float = field(default_factory=time.monotonic)


class Engine:
    """One listening socket served by its own loop thread."""

    def __init__(
        self,
        address: str,
        port: int,
        dispatch: Dispatch,
        *,
        ssl_context: ssl.SSLContext | None = None,
        limits: Limits | None = None,
        extra_headers: Mapping[str, str] | None = None,
        name: str = "http",
    ) -> None:
        self.limits = limits or Limits()
        self.cap = connection_cap(self.limits)
        self._dispatch = dispatch
        self._ssl = ssl_context
        self._extra = dict(extra_headers or {})
        self._name = name
        family = socket.AF_INET6 if ":" in address else socket.AF_INET
        self.socket = socket.create_server((address, port), family=family, backlog=self.limits.backlog)
        self.socket.setblocking(False)
        self._loop = asyncio.new_event_loop()
        self._connections: dict[_Connection, None] = {}
        self._freed: asyncio.Event | None = None
        self._accepting: asyncio.Task[None] | None = None
        self._stopping = False
        self._workers = _Workers(self.limits.workers, f"{name}-handler")
        self._thread: threading.Thread | None = None
        self._started = threading.Event()
        #: connections closed to make room, and connections refused by framing, since start
        self.evicted = 0
        self.refused = 0

    @property
    def connections(self) -> int:
        """Open connections (read from any thread; approximate while it changes)."""
        return len(self._connections)

    # -- lifecycle ---------------------------------------------------------------------------

    def start(self) -> None:
        """Serve on a background thread."""
        self._thread = threading.Thread(target=self._run, name=self._name, daemon=True)
        self._thread.start()
        self._started.wait()

    def _run(self) -> None:
        asyncio.set_event_loop(self._loop)
        self._freed = asyncio.Event()
        self._accepting = self._loop.create_task(self._accept_loop())
        self._started.set()
        with contextlib.suppress(asyncio.CancelledError):
            self._loop.run_until_complete(self._accepting)
        # Requests already being answered finish (an apply answers its caller); then the loop ends.
        pending = [t for t in asyncio.all_tasks(self._loop) if not t.done()]
        if pending:
            self._loop.run_until_complete(asyncio.wait(pending))
        self._loop.close()
        self._workers.close()

    def stop(self) -> None:
        """Stop accepting, close idle connections; requests in progress still get their answer."""
        if self._thread is None:
            self.socket.close()
            return
        self._loop.call_soon_threadsafe(self._begin_stop)
        self._thread.join(timeout=0.5)

    def _begin_stop(self) -> None:
        self._stopping = True
        if self._accepting is not None:
            self._accepting.cancel()
        self.socket.close()
        for conn in list(self._connections):
            if not conn.busy:
                _close(conn)

    # -- accepting ---------------------------------------------------------------------------

    def _make_room(self) -> float:
        """Close the idle connection that has waited longest past its grace (`EVICT_AFTER`).

        Returns 0 when a slot was freed, else how long to wait before one may be (inf: every connection is busy).
        """
        now = time.monotonic()
        best: _Connection | None = None
        wait = float("inf")
        for conn in self._connections:
            if conn.busy:
                continue
            # Bytes of an unfinished head, or a kept-alive connection: it had its chance. A connection that
            # has sent nothing yet may be a client whose request is still in the kernel's buffer.
            started = conn.served or (conn.reader is not None and bool(conn.reader._buffer))  # type: ignore[attr-defined]
            remaining = (EVICT_AFTER if started else EVICT_SILENT_AFTER) - (now - conn.waiting_since)
            if remaining <= 0 and (best is None or conn.waiting_since < best.waiting_since):
                best = conn
            wait = min(wait, remaining)
        if best is None:
            return wait
        self._connections.pop(best, None)
        _close(best)
        self.evicted += 1
        return 0.0

    async def _accept_loop(self) -> None:
        assert self._freed is not None
        loop = asyncio.get_running_loop()
        while True:
            while len(self._connections) >= self.cap:
                wait = self._make_room()
                if not wait:
                    break
                self._freed.clear()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._freed.wait(), None if wait == float("inf") else wait)
            try:
                sock, address = await loop.sock_accept(self.socket)
            except OSError as err:
                # Out of descriptors or a connection reset before accept: never fatal for the listener.
                log.warning("%s: accept failed: %s", self._name, err)
                await asyncio.sleep(0.05)
                continue
            conn = _Connection()
            self._connections[conn] = None
            conn.task = loop.create_task(self._serve(conn, sock, str(address[0])))
            # Let the connections just accepted read their requests before accepting more: a backlog of
            # attackers accepted in one go would otherwise evict a scraper before its request is read.
            await asyncio.sleep(0)

    # -- one connection ----------------------------------------------------------------------

    async def _serve(self, conn: _Connection, sock: socket.socket, peer: str) -> None:
        loop = asyncio.get_running_loop()
        writer: asyncio.StreamWriter | None = None
        try:
            reader = conn.reader = asyncio.StreamReader(limit=MAX_HEAD, loop=loop)
            protocol = asyncio.StreamReaderProtocol(reader, loop=loop)
            try:
                async with asyncio.timeout(self.limits.tls_handshake_seconds + 1):
                    transport, _ = await loop.connect_accepted_socket(
                        lambda: protocol,
                        sock,
                        ssl=self._ssl,
                        ssl_handshake_timeout=self.limits.tls_handshake_seconds if self._ssl else None,
                    )
            except (OSError, ssl.SSLError, TimeoutError) as err:
                log.debug("%s: connection from %s failed before a request: %s", self._name, peer, err)
                sock.close()
                return
            conn.transport = transport
            if conn not in self._connections:  # closed for room while the handshake ran
                transport.abort()
                return
            writer = asyncio.StreamWriter(transport, protocol, reader, loop)
            await self._requests(conn, reader, writer, peer)
        except (ConnectionError, OSError, ssl.SSLError, asyncio.IncompleteReadError):
            pass
        except Exception:
            log.exception("%s: connection from %s failed", self._name, peer)
        finally:
            if writer is not None:
                # close() would keep a connection whose client stopped reading open until it drains.
                if writer.transport.get_write_buffer_size():
                    writer.transport.abort()
                else:
                    writer.close()
            self._connections.pop(conn, None)
            if self._freed is not None:
                self._freed.set()

    async def _requests(
        self, conn: _Connection, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, peer: str
    ) -> None:
        deadline = self.limits.head_seconds
        while not self._stopping:
            conn.busy = False
            conn.waiting_since = time.monotonic()
            try:
                async with asyncio.timeout(deadline):
                    raw = await reader.readuntil(b"\r\n\r\n")
            except asyncio.IncompleteReadError:
                return  # the client closed (between requests, or half-way through a head)
            except (asyncio.LimitOverrunError, ValueError):
                await self._refuse(writer, FramingError(431, "request head too large"), reader)
                return
            except TimeoutError:
                if reader._buffer:  # type: ignore[attr-defined]  # a partial head: say why we close
                    await self._refuse(writer, FramingError(408, "request head not received in time"), reader)
                return
            conn.busy = True
            try:
                head = parse_head(raw[:-4])
            except FramingError as err:
                await self._refuse(writer, err, reader)
                return
            body = b""
            if head.content_length:
                if head.expects_continue:
                    writer.write(b"HTTP/1.1 100 Continue\r\n\r\n")
                try:
                    async with asyncio.timeout(self.limits.body_seconds):
                        body = await reader.readexactly(head.content_length)
                except TimeoutError:
                    await self._refuse(writer, FramingError(408, "request body not received in time"), reader)
                    return
            ssl_object = writer.get_extra_info("ssl_object")
            client_cert = None
            if ssl_object is not None:
                details = ssl_object.getpeercert()
                # getpeercert() is empty unless the certificate was verified; only then is the DER trusted.
                if details:
                    client_cert = (details, ssl_object.getpeercert(binary_form=True))
            incoming = Incoming(head, body, peer, client_cert)
            reply: Reply = await asyncio.wrap_future(self._workers.submit(partial(self._dispatch, incoming)))
            close = not head.keep_alive or reply.status >= 400 or self._stopping
            await self._answer(writer, reply, head.method == "HEAD", close)
            conn.served += 1
            if close:
                return
            deadline = self.limits.idle_seconds

    async def _refuse(self, writer: asyncio.StreamWriter, err: FramingError, reader: asyncio.StreamReader) -> None:
        self.refused += 1
        text = f"{err.reason}\n".encode()
        reply = _Plain(err.status, text, "text/plain; charset=utf-8", {})
        try:
            await self._answer(writer, reply, False, True)
            await self._linger(writer, reader)
        except (ConnectionError, OSError, TimeoutError):
            pass

    async def _linger(self, writer: asyncio.StreamWriter, reader: asyncio.StreamReader) -> None:
        """Read and drop what the client still sends for a moment, so it sees the answer, not a reset."""
        if not writer.can_write_eof():
            return
        writer.write_eof()
        dropped = 0
        async with asyncio.timeout(LINGER_SECONDS):
            while dropped < LINGER_BYTES:
                chunk = await reader.read(64 * 1024)
                if not chunk:
                    return
                dropped += len(chunk)

    async def _answer(self, writer: asyncio.StreamWriter, reply: Reply, head_only: bool, close: bool) -> None:
        try:
            phrase = HTTPStatus(reply.status).phrase
        except ValueError:
            phrase = "Unknown"
        lines = [
            f"HTTP/1.1 {reply.status} {phrase}",
            "Server: certmon",
            f"Content-Type: {reply.content_type}",
            f"Content-Length: {len(reply.body)}",
        ]
        lines += [f"{name}: {value}" for name, value in {**self._extra, **reply.headers}.items()]
        if close:
            lines.append("Connection: close")
        head = ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")
        async with asyncio.timeout(self.limits.write_seconds):
            writer.write(head)
            if not head_only:
                # A body of parts (daemon.bodyparts) is sent part after part, never joined.
                for part in reply.body.chunks if isinstance(reply.body, Parts) else (reply.body,):
                    view = memoryview(part)
                    for start in range(0, len(view), WRITE_CHUNK):
                        writer.write(view[start : start + WRITE_CHUNK])
                        await writer.drain()
            if close:
                # drain() returns under the low-water mark, not at empty; the connection closes next and
                # would drop what the transport still holds (CI lost the last 28 KiB of /metrics that way).
                writer.transport.set_write_buffer_limits(high=0)
            await writer.drain()


@dataclass
class _Plain:
    status: int
    body: bytes
    content_type: str
    headers: dict[str, str]
