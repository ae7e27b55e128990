"""A loopback TCP proxy in front of a simulated peer that misbehaves on demand, for fault tests.

Modes: `pass` forwards both ways; `refuse` stops listening (connections are refused); `delay`
forwards after `delay` seconds (a peer slower than certmon's deadline); `hang` accepts and reads
but never answers; `garbage` answers whatever arrives with bytes that are no protocol at all;
`tls-alert` answers the TLS ClientHello with a fatal handshake_failure alert; `redirect` forwards
to another upstream (an impostor presenting another certificate). Changing the mode drops every
open connection, as a network fault breaks them: pooled keep-alive connections see the new mode
on their next request.
"""

from __future__ import annotations

import contextlib
import os
import select
import socket
import threading
import time
from types import TracebackType

MODES = ("pass", "refuse", "delay", "hang", "garbage", "tls-alert", "redirect")
GARBAGE = b"\x17\x00\xff garbage \xfe\x80 not a protocol \x00\x01\x02\r\n\r\n" * 8
# TLS record: alert, TLS 1.2, length 2, level fatal, description handshake_failure (40).
TLS_ALERT = b"\x15\x03\x03\x00\x02\x02\x28"


class FaultProxy:
    """Forwards 127.0.0.1:port to an upstream, or misbehaves; a context manager."""

    def __init__(self, upstream: tuple[str, int], host: str = "127.0.0.1") -> None:
        self.upstream = upstream
        self.host = host
        self.mode = "pass"
        self.delay = 0.0
        self.redirect_to: tuple[str, int] | None = None
        self.connections = 0
        self._lock = threading.Lock()
        self._sockets: set[socket.socket] = set()
        self._stop = threading.Event()
        self._refusing = threading.Event()
        self._listener: socket.socket | None = None
        self._thread: threading.Thread | None = None
        self.port = 0
        self._listen()

    def _listen(self) -> None:
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        if os.name != "nt":
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((self.host, self.port))
        sock.listen(64)
        sock.settimeout(0.05)
        self.port = int(sock.getsockname()[1])
        self._listener = sock

    @property
    def address(self) -> str:
        """host:port clients connect to."""
        return f"{self.host}:{self.port}"

    def start(self) -> FaultProxy:
        """Accept on a background thread."""
        self._thread = threading.Thread(target=self._accept_loop, name="fault-proxy", daemon=True)
        self._thread.start()
        return self

    def set(self, mode: str, *, delay: float = 0.0, redirect_to: tuple[str, int] | None = None) -> None:
        """Switch mode; open connections are dropped."""
        if mode not in MODES:
            raise ValueError(f"unknown mode {mode!r}; one of {', '.join(MODES)}")
        if mode == "redirect" and redirect_to is None:
            raise ValueError("redirect needs redirect_to")
        with self._lock:
            previous, self.mode = self.mode, mode
            self.delay, self.redirect_to = delay, redirect_to
            if mode == "refuse":
                self._refusing.clear()
            elif previous == "refuse":
                self._listen()  # the same port again: clients keep their configured address
        # The accept thread closes the listener itself: closed from here while it polls, the
        # kernel would keep the socket (and queue connections) until that poll returns.
        waiting = mode == "refuse" and previous != "refuse" and self._thread is not None
        if waiting and not self._refusing.wait(5):
            raise RuntimeError("the proxy's accept loop did not stop listening")
        self.drop()

    def drop(self) -> None:
        """Close every open connection (both sides)."""
        with self._lock:
            sockets, self._sockets = self._sockets, set()
        for sock in sockets:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
            sock.close()

    def _track(self, sock: socket.socket) -> bool:
        with self._lock:
            if self._stop.is_set():
                return False
            self._sockets.add(sock)
            return True

    def _accept_loop(self) -> None:
        while not self._stop.is_set():
            with self._lock:
                if self.mode == "refuse" and self._listener is not None:
                    self._listener.close()
                    self._listener = None
                    self._refusing.set()
                listener = self._listener
            if listener is None:
                time.sleep(0.02)
                continue
            try:
                conn, _ = listener.accept()
            except (TimeoutError, OSError):
                continue
            self.connections += 1
            with self._lock:
                mode, delay, redirect = self.mode, self.delay, self.redirect_to
            if not self._track(conn):
                conn.close()
                continue
            threading.Thread(
                target=self._serve, args=(conn, mode, delay, redirect), name="fault-proxy-conn", daemon=True
            ).start()

    def _serve(self, conn: socket.socket, mode: str, delay: float, redirect: tuple[str, int] | None) -> None:
        try:
            if mode == "hang":
                _drain(conn)
            elif mode in ("garbage", "tls-alert"):
                conn.settimeout(5)
                conn.recv(65536)  # the client speaks first in every protocol proxied here
                conn.sendall(GARBAGE if mode == "garbage" else TLS_ALERT)
            else:
                # A delay gives up early when the connection is dropped (the mode changed).
                if mode == "delay" and delay > 0 and not self._wait_tracked(conn, delay):
                    return
                target = redirect if mode == "redirect" and redirect is not None else self.upstream
                upstream = socket.create_connection(target, timeout=5)
                upstream.settimeout(None)
                if not self._track(upstream):
                    upstream.close()
                    return
                _pump(conn, upstream)
        except OSError:
            pass
        finally:
            with self._lock:
                self._sockets.discard(conn)
            conn.close()

    def _wait_tracked(self, conn: socket.socket, seconds: float) -> bool:
        """Wait `seconds`; False as soon as the connection is dropped (the mode changed)."""
        end = time.monotonic() + seconds
        while time.monotonic() < end:
            with self._lock:
                if conn not in self._sockets:
                    return False
            time.sleep(0.02)
        return True

    def stop(self) -> None:
        """Stop listening and drop every connection."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(5)
        with self._lock:
            if self._listener is not None:
                self._listener.close()
                self._listener = None
        self.drop()

    def __enter__(self) -> FaultProxy:
        return self.start()

    def __exit__(
        self, kind: type[BaseException] | None, value: BaseException | None, trace: TracebackType | None
    ) -> None:
        self.stop()


def _drain(conn: socket.socket) -> None:
    conn.settimeout(None)
    while conn.recv(65536):
        pass


def _pump(left: socket.socket, right: socket.socket) -> None:
    """Copy bytes both ways until either side closes."""
    pair = {left: right, right: left}
    try:
        while True:
            readable, _, _ = select.select(list(pair), [], [], 1.0)
            for sock in readable:
                data = sock.recv(65536)
                if not data:
                    return
                pair[sock].sendall(data)
    except (OSError, ValueError):
        return
    finally:
        right.close()
