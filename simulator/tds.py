"""A stand-in for SQL Server's listener: the PRELOGIN exchange and TLS inside TDS, or TDS 8 strict.

Like SQL Server 2022, the first byte decides: 0x12 starts a TDS 7.x PRELOGIN (the TLS handshake then
travels inside PRELOGIN packets), 0x16 starts a TDS 8 TLS handshake (ALPN tds/8.0) with PRELOGIN
inside it. `accept` limits the server to one of them, as older versions or "force strict" do.
"""

from __future__ import annotations

import socket
import ssl
from collections.abc import Sequence
from types import TracebackType

from collectors.base import Deadline
from collectors.tls.tds import (
    ALPN_TDS8,
    ENCRYPT_NOT_SUP,
    ENCRYPT_ON,
    ENCRYPTION,
    INSTOPT,
    MARS,
    PRELOGIN,
    TABULAR_RESULT,
    THREADID,
    VERSION,
    MessageReader,
    build_prelogin,
    encode_packets,
    parse_prelogin,
)
from collectors.transport import SocketChannel
from simulator.pki import Issued
from simulator.tdslogin import answer_login
from simulator.tls import Listener, drain, server_context

TLS_HANDSHAKE_BYTE = 0x16


class TdsServer:
    """SQL Server's pre-login and TLS behaviour on loopback; a context manager."""

    def __init__(
        self,
        issued: Issued,
        chain: Sequence[Issued] = (),
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        accept: Sequence[str] = ("tds7", "tds8"),
        encryption: int = ENCRYPT_ON,
        version: tuple[int, int, int, int] = (16, 0, 1000, 6),
        garbage: bool = False,
        name: str = "tds",
    ) -> None:
        self.accept = tuple(accept)
        self.encryption = encryption
        #: TDS 7 TLS handshakes completed, and the users of the LOGIN7 messages received over them (all refused)
        self.handshakes = 0
        self.logins: list[str] = []
        self.version = version
        self.garbage = garbage
        self.present(issued, chain)
        self.listener = Listener(host, port, self._serve, name)
        self.prelogins: list[dict[int, bytes]] = []

    def present(self, issued: Issued, chain: Sequence[Issued] = ()) -> None:
        """Serve another certificate from the next connection on (SQL Server restarted with a new one)."""
        # SQL Server negotiates TLS 1.2 inside TDS 7.x; TLS 1.3 only comes with TDS 8.
        self.tds7_context = server_context(issued, chain, max_version=ssl.TLSVersion.TLSv1_2)
        self.tds8_context = server_context(issued, chain, alpn=(ALPN_TDS8,))

    @property
    def host(self) -> str:
        """The bound address."""
        return self.listener.host

    @property
    def port(self) -> int:
        """The bound port."""
        return self.listener.port

    def answer(self) -> bytes:
        """The PRELOGIN response payload this server sends."""
        major, minor, build, sub = self.version
        version = bytes([major, minor]) + build.to_bytes(2, "big") + sub.to_bytes(2, "big")
        return build_prelogin(
            [
                (VERSION, version),
                (ENCRYPTION, bytes([self.encryption])),
                (INSTOPT, b"\x00"),
                (THREADID, b""),
                (MARS, b"\x00"),
            ]
        )

    def _serve(self, conn: socket.socket) -> None:
        first = conn.recv(1, socket.MSG_PEEK)
        if not first:
            return
        if self.garbage:
            conn.recv(4096)
            conn.sendall(b"\x53\x53\x48-2.0-OpenSSH_9.2\r\n")
            return
        if first[0] == TLS_HANDSHAKE_BYTE and "tds8" in self.accept:
            self._strict(conn)
        elif first[0] == PRELOGIN and "tds7" in self.accept:
            self._tds7(conn)
        # Anything else: SQL Server closes the connection without a word.

    def _read_prelogin(self, sock: socket.socket) -> bool:
        channel = SocketChannel(sock, Deadline.after(10), "simulator", "pre-login")
        payload = MessageReader(channel, "simulator", "pre-login").message((PRELOGIN,))
        if not payload:
            return False
        options = parse_prelogin(payload)
        if next(iter(options), None) != VERSION:
            return False  # the client version must come first (MS-TDS 3.3.5.1)
        self.prelogins.append(options)
        return True

    def _strict(self, conn: socket.socket) -> None:
        tls = self.tds8_context.wrap_socket(conn, server_side=True)
        with tls:
            if self._read_prelogin(tls):
                tls.sendall(encode_packets(TABULAR_RESULT, self.answer()))
                drain(tls)

    def _tds7(self, conn: socket.socket) -> None:
        if not self._read_prelogin(conn):
            return
        conn.sendall(encode_packets(TABULAR_RESULT, self.answer()))
        if self.encryption == ENCRYPT_NOT_SUP:
            drain(conn)
            return
        incoming, outgoing = ssl.MemoryBIO(), ssl.MemoryBIO()
        tls = self.tds7_context.wrap_bio(incoming, outgoing, server_side=True)
        channel = SocketChannel(conn, Deadline.after(10), "simulator", "TLS handshake inside TDS")
        reader = MessageReader(channel, "simulator", "TLS handshake inside TDS")
        while True:
            payload = reader.message((PRELOGIN,))
            if not payload:
                return
            incoming.write(payload)
            try:
                tls.do_handshake()
                done = True
            except ssl.SSLWantReadError:
                done = False
            except ssl.SSLError:
                flight = outgoing.read()
                if flight:
                    conn.sendall(encode_packets(PRELOGIN, flight))
                return
            flight = outgoing.read()
            if flight:
                conn.sendall(encode_packets(PRELOGIN, flight))
            if done:
                # From here on the client sends LOGIN7 over TLS directly on TCP: refuse it as SQL Server
                # refuses an unknown login (a probe sends nothing and just closes).
                self.handshakes += 1
                answer_login(conn, tls, incoming, outgoing, self.logins.append)
                drain(conn)
                return

    def start(self) -> TdsServer:
        """Start accepting."""
        self.listener.start()
        return self

    def stop(self) -> None:
        """Stop accepting."""
        self.listener.stop()

    def __enter__(self) -> TdsServer:
        return self.start()

    def __exit__(
        self, kind: type[BaseException] | None, value: BaseException | None, trace: TracebackType | None
    ) -> None:
        self.stop()
