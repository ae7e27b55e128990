"""TLS endpoints on loopback presenting the lab's certificates, for the demo and the tests.

`TlsEndpointServer` is a context manager: a listener thread accepts, and each connection gets its
own thread that does the handshake (or misbehaves on purpose: closes at once, speaks plain HTTP,
demands a client certificate) and then hands the TLS socket to an optional responder.
"""

from __future__ import annotations

import logging
import os
import socket
import ssl
import tempfile
import threading
import warnings
from collections.abc import Callable, Sequence
from types import TracebackType

from simulator.pki import Issued

log = logging.getLogger("certmon.simulator")

MODES = ("tls", "close", "plain", "client-cert")
Responder = Callable[[socket.socket], None]


def server_context(
    issued: Issued,
    chain: Sequence[Issued] = (),
    *,
    min_version: ssl.TLSVersion | None = None,
    max_version: ssl.TLSVersion | None = None,
    alpn: Sequence[str] = (),
    client_ca: Issued | None = None,
) -> ssl.SSLContext:
    """A server context presenting `issued` followed by `chain`."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    # load_cert_chain only reads files: write them to a private folder and remove them at once.
    with tempfile.TemporaryDirectory(prefix="certmon-sim-") as folder:
        cert_file, key_file = os.path.join(folder, "chain.pem"), os.path.join(folder, "key.pem")
        with open(cert_file, "wb") as handle:
            handle.write(issued.pem + b"".join(c.pem for c in chain))
        with open(key_file, "wb") as handle:
            handle.write(issued.key_pem)
        context.load_cert_chain(cert_file, key_file)
    with warnings.catch_warnings():
        # Simulating a legacy TLS 1.0 server is the point; the stdlib warns about the old versions.
        warnings.simplefilter("ignore", DeprecationWarning)
        if min_version is not None:
            context.minimum_version = min_version
        if max_version is not None:
            context.maximum_version = max_version
    if alpn:
        context.set_alpn_protocols(list(alpn))
    if client_ca is not None:
        context.verify_mode = ssl.CERT_REQUIRED
        context.load_verify_locations(cadata=client_ca.pem.decode())
    return context


def drain(sock: socket.socket) -> None:
    """Read until the client closes (the default responder: the probe only wants the handshake)."""
    try:
        while sock.recv(4096):
            pass
    except OSError:
        pass


class Listener:
    """A loopback TCP listener whose connections are served on their own threads."""

    def __init__(self, host: str, port: int, serve: Callable[[socket.socket], None], name: str) -> None:
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        self._sock = socket.socket(family, socket.SOCK_STREAM)
        try:
            if os.name != "nt":
                self._sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            self._sock.bind((host, port))
            self._sock.listen(64)
        except OSError:
            self._sock.close()
            raise
        self._sock.settimeout(0.1)
        self._address = self._sock.getsockname()
        self._serve = serve
        self._name = name
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.connections = 0

    @property
    def host(self) -> str:
        """The bound address."""
        return str(self._address[0])

    @property
    def port(self) -> int:
        """The bound port."""
        return int(self._address[1])

    def start(self) -> None:
        """Accept on a background thread."""
        self._thread = threading.Thread(target=self._accept_loop, name=f"sim-{self._name}", daemon=True)
        self._thread.start()

    def _accept_loop(self) -> None:
        while not self._stop.is_set():
            try:
                conn, _ = self._sock.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            self.connections += 1
            conn.settimeout(10)
            # Small handshake flights must not wait for delayed ACKs (40 ms each on Linux).
            conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            threading.Thread(target=self._handle, args=(conn,), name=f"sim-{self._name}-conn", daemon=True).start()

    def _handle(self, conn: socket.socket) -> None:
        try:
            self._serve(conn)
        except Exception as err:  # noqa: BLE001 - a misbehaving client must not kill the simulator
            log.debug("%s: connection ended: %s", self._name, err)
        finally:
            conn.close()

    def stop(self) -> None:
        """Stop accepting and close the listening socket."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
        self._sock.close()


class TlsEndpointServer:
    """A TLS endpoint on loopback presenting a certificate and its chain."""

    def __init__(
        self,
        issued: Issued,
        chain: Sequence[Issued] = (),
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        mode: str = "tls",
        min_version: ssl.TLSVersion | None = None,
        max_version: ssl.TLSVersion | None = None,
        alpn: Sequence[str] = (),
        responder: Responder = drain,
        name: str = "tls",
    ) -> None:
        if mode not in MODES:
            raise ValueError(f"unknown mode {mode!r}; one of {', '.join(MODES)}")
        self.mode = mode
        self.issued = issued
        self.responder = responder
        if mode == "client-cert":
            # TLS 1.2: the server's certificate travels before it asks for the client's, and the
            # handshake then fails on the client side, as with an SF gateway probed without one.
            max_version = ssl.TLSVersion.TLSv1_2
        self._versions = (min_version, max_version, tuple(alpn))
        #: SNI names clients sent (None when a client sent none)
        self.server_names: list[str | None] = []
        self.context = self._context(issued, chain)
        self.listener = Listener(host, port, self._serve, name)

    def _context(self, issued: Issued, chain: Sequence[Issued]) -> ssl.SSLContext:
        min_version, max_version, alpn = self._versions
        context = server_context(
            issued,
            chain,
            min_version=min_version,
            max_version=max_version,
            alpn=alpn,
            client_ca=issued if self.mode == "client-cert" else None,
        )
        context.sni_callback = self._record_sni
        return context

    def present(self, issued: Issued, chain: Sequence[Issued] = ()) -> None:
        """Present another certificate from the next connection on, as after rebinding the real service."""
        self.context = self._context(issued, chain)
        self.issued = issued

    def _record_sni(self, tls: ssl.SSLObject, name: str | None, context: ssl.SSLContext) -> None:
        self.server_names.append(name)

    @property
    def host(self) -> str:
        """The bound address."""
        return self.listener.host

    @property
    def port(self) -> int:
        """The bound port."""
        return self.listener.port

    @property
    def connections(self) -> int:
        """Connections accepted so far."""
        return self.listener.connections

    def _serve(self, conn: socket.socket) -> None:
        if self.mode == "close":
            return
        if self.mode == "plain":
            conn.recv(4096)
            conn.sendall(b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
            return
        try:
            tls = self.context.wrap_socket(conn, server_side=True)
        except (ssl.SSLError, OSError) as err:
            log.debug("handshake failed: %s", err)
            return
        with tls:
            self.responder(tls)

    def start(self) -> TlsEndpointServer:
        """Start accepting."""
        self.listener.start()
        return self

    def stop(self) -> None:
        """Stop accepting."""
        self.listener.stop()

    def __enter__(self) -> TlsEndpointServer:
        return self.start()

    def __exit__(
        self, kind: type[BaseException] | None, value: BaseException | None, trace: TracebackType | None
    ) -> None:
        self.stop()


def same_port_on(
    hosts: Sequence[str], make: Callable[[str, int], TlsEndpointServer], attempts: int = 20
) -> list[TlsEndpointServer]:
    """One server per loopback address, all on the same free port, as nodes behind a load balancer."""
    for _ in range(attempts):
        first = make(hosts[0], 0)
        servers = [first]
        try:
            for host in hosts[1:]:
                servers.append(make(host, first.port))
        except OSError:
            for server in servers:
                server.listener.stop()
            continue
        return [s.start() for s in servers]
    raise OSError(f"no common free port on {', '.join(hosts)}")
