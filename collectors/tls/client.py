"""The TLS client side of every probe: handshake with verification off, keep the chain as presented.

Verification is deliberately off during the handshake: a probe must still read the certificate of
an endpoint whose certificate is expired, self-signed, untrusted or for another name, and then judge
the chain itself (collectors.tls.chain) at the injected clock. One handshake per probe, not a
verifying one followed by a non-verifying one, halves the load on the endpoint.

The engine is pyOpenSSL over the OpenSSL that `cryptography` ships: faster handshakes than a
stdlib linked to OpenSSL 3.0, the same TLS behaviour on every platform, and a public call for the
chain as presented (the stdlib exposes it only from Python 3.13). TLS straight on TCP lets OpenSSL
drive the socket; TLS inside TDS 7.x PRELOGIN packets goes through memory buffers.
"""

from __future__ import annotations

import contextlib
import io
import ipaddress
import re
import selectors
import socket
from collections.abc import Sequence
from dataclasses import dataclass

from cryptography.hazmat.primitives.serialization import Encoding
from OpenSSL import SSL

from collectors.base import Deadline
from collectors.errors import CollectorError, Reason
from collectors.transport import RECEIVE_SIZE, Channel

TLS_VERSION_NAMES = {
    "SSLv3": "SSL 3.0",
    "TLSv1": "TLS 1.0",
    "TLSv1.1": "TLS 1.1",
    "TLSv1.2": "TLS 1.2",
    "TLSv1.3": "TLS 1.3",
}

# OpenSSL reasons an operator meets, in words that point at the cause (alert prefixes removed).
_SSL_REASONS = {
    "wrong version number": "the peer does not speak TLS on this port (wrong version number)",
    "record layer failure": "the peer does not speak TLS on this port (record layer failure)",
    "packet length too long": "the peer does not speak TLS on this port (packet length too long)",
    "unsupported protocol": "no TLS version in common with the server",
    "alert protocol version": "the server refused the TLS versions offered (protocol version alert)",
    "alert handshake failure": "the server aborted the handshake (handshake failure alert)",
    "alert certificate required": "the server requires a client certificate",
    "alert bad certificate": "the server rejected the client certificate",
    "no shared cipher": "no cipher suite in common with the server",
    "alert internal error": "the server reported an internal error during the handshake",
    "alert unrecognized name": "the server does not know the SNI name sent",
}
_ALERT_PREFIX = re.compile(r"^(?:sslv3|tlsv1|tlsv13|tls) alert ")


@dataclass(frozen=True, slots=True)
class Handshake:
    """What a handshake produced: the chain as presented, and why the probe failed when it did."""

    chain: tuple[bytes, ...]
    version: str = ""
    cipher: str = ""
    alpn: str = ""
    error: CollectorError | None = None

    @property
    def completed(self) -> bool:
        """True when the handshake finished (whatever the chain's validity)."""
        return self.error is None


def tls_error_text(err: SSL.Error) -> str:
    """An OpenSSL error in an operator's words."""
    reasons = [str(entry[2]) for entry in (err.args[0] if err.args and isinstance(err.args[0], list) else [])]
    for reason in reasons:
        key = _ALERT_PREFIX.sub("alert ", reason.lower())
        if key in _SSL_REASONS:
            return _SSL_REASONS[key]
    return "; ".join(reasons) or str(err) or type(err).__name__


def tls_failure(where: str, err: SSL.Error, stage: str = "TLS handshake") -> CollectorError:
    """Map a pyOpenSSL error during a handshake to a reason."""
    if isinstance(err, SSL.ZeroReturnError | SSL.SysCallError):
        return CollectorError(where, Reason.TLS_ERROR, f"connection closed by the server during the {stage}")
    return CollectorError(where, Reason.TLS_ERROR, f"{stage} failed: {tls_error_text(err)}")


def client_context(alpn: Sequence[str] = ()) -> SSL.Context:
    """A client context that accepts any certificate and every TLS version the OpenSSL build speaks."""
    context = SSL.Context(SSL.TLS_CLIENT_METHOD)
    context.set_verify(SSL.VERIFY_NONE)
    # A monitor must be able to report an endpoint still on TLS 1.0 or weak ciphers, so the floor
    # is lowered; nothing secret is ever sent over these connections.
    try:
        context.set_min_proto_version(SSL.TLS1_VERSION)
        context.set_cipher_list(b"ALL:@SECLEVEL=0")
    except SSL.Error:
        context.set_min_proto_version(SSL.TLS1_2_VERSION)
    if alpn:
        context.set_alpn_protos([p.encode() for p in alpn])
    return context


def sni_name(server_name: str | None) -> bytes | None:
    """The SNI to send: None for empty names and IP addresses (SNI carries host names only)."""
    if not server_name:
        return None
    try:
        ipaddress.ip_address(server_name.strip("[]"))
    except ValueError:
        return server_name.encode("idna")
    return None


class TlsClient:
    """One client TLS connection driven through memory buffers over a channel (TLS inside TDS 7.x packets)."""

    def __init__(self, context: SSL.Context, channel: Channel, server_name: str | None, where: str) -> None:
        self.channel = channel
        self.where = where
        self.connection = self._connection(context, None, server_name)
        self._pending = b""

    @staticmethod
    def _connection(context: SSL.Context, sock: socket.socket | None, server_name: str | None) -> SSL.Connection:
        connection = SSL.Connection(context, sock)
        connection.set_connect_state()
        name = sni_name(server_name)
        if name:
            connection.set_tlsext_host_name(name)
        return connection

    def _flush(self) -> None:
        try:
            data = self.connection.bio_read(RECEIVE_SIZE * 4)
        except SSL.WantReadError:
            return
        if data:
            self.channel.send(data)

    def _await_read(self) -> bool:
        """Make incoming bytes available to OpenSSL; False once the server closed."""
        self._flush()
        data = self.channel.receive()
        if not data:
            self.connection.bio_shutdown()
            return False
        self.connection.bio_write(data)
        return True

    def _await_write(self) -> None:
        self._flush()

    def handshake(self) -> Handshake:
        """Run the handshake; a failure after the certificate arrived is kept in Handshake.error."""
        while True:
            try:
                self.connection.do_handshake()
            except SSL.WantReadError:
                pass
            except SSL.WantWriteError:
                try:
                    self._await_write()
                except CollectorError as err:
                    return self._failed(err, None)
                continue
            except SSL.Error as err:
                # Send the alert OpenSSL queued, so the server knows why we stop.
                with contextlib.suppress(CollectorError):
                    self._flush()
                return self._failed(tls_failure(self.where, err), err)
            else:
                with contextlib.suppress(CollectorError):
                    # TLS 1.3: the client's Finished still has to reach the server.
                    self._flush()
                return self._facts()
            try:
                self._await_read()
            except CollectorError as err:
                return self._failed(err, None)

    def chain(self) -> tuple[bytes, ...]:
        """The chain exactly as the server sent it (leaf first), even when the handshake failed later."""
        certs = self.connection.get_peer_cert_chain(as_cryptography=True) or []
        return tuple(cert.public_bytes(Encoding.DER) for cert in certs)

    def _facts(self) -> Handshake:
        version = self.connection.get_protocol_version_name() or ""
        alpn = self.connection.get_alpn_proto_negotiated() or b""
        return Handshake(
            self.chain(),
            TLS_VERSION_NAMES.get(version, version),
            self.connection.get_cipher_name() or "",
            alpn.decode("ascii", "replace"),
        )

    def _failed(self, error: CollectorError, cause: Exception | None) -> Handshake:
        chain = self.chain()
        if chain:
            return Handshake(chain, error=error)
        if cause is None:
            raise error
        raise error from cause

    def send(self, data: bytes) -> None:
        """Send application data."""
        view = memoryview(data)
        while view:
            try:
                sent = self.connection.send(view)
            except SSL.WantWriteError:
                self._await_write()
                continue
            except SSL.WantReadError:
                self._await_read()
                continue
            except SSL.Error as err:
                raise tls_failure(self.where, err, "TLS session") from err
            view = view[sent:]
        self._flush()

    def receive(self, limit: int = RECEIVE_SIZE) -> bytes:
        """Up to `limit` bytes of application data; b'' once the server closed."""
        if self._pending:
            data, self._pending = self._pending[:limit], self._pending[limit:]
            return data
        while True:
            try:
                data = self.connection.recv(RECEIVE_SIZE)
            except SSL.WantReadError:
                if not self._await_read():
                    return b""
                continue
            except SSL.WantWriteError:
                self._await_write()
                continue
            except (SSL.ZeroReturnError, SSL.SysCallError):
                return b""
            except SSL.Error as err:
                raise tls_failure(self.where, err, "TLS session") from err
            data, self._pending = data[:limit], data[limit:]
            return data

    def close(self) -> None:
        """Send close_notify without waiting for the server's."""
        with contextlib.suppress(SSL.Error, CollectorError, OSError):
            self.connection.shutdown()
            self._flush()


class SocketTlsClient(TlsClient):
    """TLS straight on a TCP socket: OpenSSL reads and writes the socket itself, select() keeps the deadline.

    Fewer round trips through Python than the memory-buffer driver, which matters for a probe that
    is mostly a handshake.
    """

    def __init__(
        self, context: SSL.Context, sock: socket.socket, deadline: Deadline, server_name: str | None, where: str
    ) -> None:
        self.sock = sock
        self.deadline = deadline
        self.where = where
        self.stage = "TLS handshake"
        sock.setblocking(False)
        self.connection = self._connection(context, sock, server_name)
        self._pending = b""

    def _wait(self, readable: bool) -> None:
        remaining = self.deadline.remaining()
        if remaining <= 0:
            raise CollectorError(self.where, Reason.TIMEOUT, f"no answer during the {self.stage}")
        # selectors (poll/epoll), not select(): select() fails for descriptors above 1,023, which a busy
        # daemon reaches.
        with selectors.DefaultSelector() as selector:
            selector.register(self.sock, selectors.EVENT_READ if readable else selectors.EVENT_WRITE)
            ready = selector.select(remaining)
        if not ready:
            raise CollectorError(self.where, Reason.TIMEOUT, f"no answer during the {self.stage}")

    def _flush(self) -> None:
        """OpenSSL writes the socket itself."""

    def _await_read(self) -> bool:
        self._wait(readable=True)
        return True

    def _await_write(self) -> None:
        self._wait(readable=False)


class _Reader(io.RawIOBase):
    """Decrypted bytes of a TlsClient as a raw stream; closing it leaves the connection open."""

    def __init__(self, client: TlsClient) -> None:
        super().__init__()
        self.client = client

    def readable(self) -> bool:
        """Readable."""
        return True

    def readinto(self, buffer: memoryview) -> int:  # type: ignore[override]
        """Fill buffer with decrypted bytes (0 at the end of the stream)."""
        data = self.client.receive(len(buffer))
        buffer[: len(data)] = data
        return len(data)


class TlsStream:
    """A socket-like face of a TlsClient for http.client: sendall, makefile and close."""

    def __init__(self, client: TlsClient, sock: socket.socket) -> None:
        self.client = client
        self.sock = sock
        self.closed = False

    def sendall(self, data: bytes) -> None:
        """Send encrypted."""
        self.client.send(bytes(data))

    def makefile(self, mode: str = "rb", buffering: int = -1) -> io.BufferedReader:
        """A buffered reader over the decrypted stream (http.client reads responses through it)."""
        return io.BufferedReader(_Reader(self.client))

    def close(self) -> None:
        """Close the TLS session and the socket."""
        if not self.closed:
            self.closed = True
            self.client.close()
            self.sock.close()
