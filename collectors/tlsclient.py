"""The TLS client side of every probe: connect, handshake with verification off, keep the presented chain.

Verification is deliberately off during the handshake: a probe must still read the certificate of
an endpoint whose certificate is expired, self-signed, untrusted or for another name, and then judge
the chain itself (collectors.tlschain). One handshake per probe also halves the load on the endpoint
compared with a verifying handshake followed by a non-verifying one.
"""

from __future__ import annotations

import contextlib
import socket
import ssl
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from collectors.base import Deadline
from collectors.errors import CollectorError, Reason

TLS_VERSION_NAMES = {
    "SSLv3": "SSL 3.0",
    "TLSv1": "TLS 1.0",
    "TLSv1.1": "TLS 1.1",
    "TLSv1.2": "TLS 1.2",
    "TLSv1.3": "TLS 1.3",
}

# OpenSSL reasons an operator meets, in words that point at the cause.
_SSL_REASONS = {
    "WRONG_VERSION_NUMBER": "the peer does not speak TLS on this port (wrong version number)",
    "RECORD_LAYER_FAILURE": "the peer does not speak TLS on this port (record layer failure)",
    "UNSUPPORTED_PROTOCOL": "no TLS version in common with the server",
    "TLSV1_ALERT_PROTOCOL_VERSION": "the server refused the TLS version offered (protocol version alert)",
    "SSLV3_ALERT_HANDSHAKE_FAILURE": "the server aborted the handshake (handshake failure alert)",
    "TLSV13_ALERT_CERTIFICATE_REQUIRED": "the server requires a client certificate",
    "SSLV3_ALERT_BAD_CERTIFICATE": "the server rejected the client certificate",
    "NO_SHARED_CIPHER": "no cipher suite in common with the server",
    "TLSV1_ALERT_INTERNAL_ERROR": "the server reported an internal error during the handshake",
    "TLSV1_UNRECOGNIZED_NAME": "the server does not know the SNI name sent",
    "TLSV1_ALERT_UNRECOGNIZED_NAME": "the server does not know the SNI name sent",
}


@dataclass(frozen=True, slots=True)
class Handshake:
    """What a handshake produced: the chain as presented, and why it failed when it did."""

    chain: tuple[bytes, ...]
    version: str = ""
    cipher: str = ""
    alpn: str = ""
    error: CollectorError | None = None

    @property
    def completed(self) -> bool:
        """True when the handshake finished (whatever the chain's validity)."""
        return self.error is None


class RecordChannel(Protocol):
    """Carries TLS records for a handshake that does not run directly on TCP (TDS 7.x)."""

    def send(self, data: bytes) -> None:
        """Send TLS bytes to the server."""

    def receive(self) -> bytes:
        """The next TLS bytes from the server; b'' once the server closed the connection."""


def client_context(alpn: Sequence[str] = ()) -> ssl.SSLContext:
    """A client context that accepts any certificate and every TLS version the local OpenSSL can speak."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    # A monitor must be able to report an endpoint still on TLS 1.0 or weak ciphers, so the floor
    # is lowered; nothing secret is ever sent over these connections.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        try:
            context.minimum_version = ssl.TLSVersion.TLSv1
            context.set_ciphers("ALL:@SECLEVEL=0")
        except (ValueError, ssl.SSLError):
            context.minimum_version = ssl.TLSVersion.TLSv1_2
    if alpn:
        context.set_alpn_protocols(list(alpn))
    return context


def sni_name(server_name: str | None) -> str | None:
    """The name to send as SNI: None for empty names and IP addresses (SNI carries host names only)."""
    if not server_name:
        return None
    import ipaddress

    try:
        ipaddress.ip_address(server_name.strip("[]"))
    except ValueError:
        return server_name
    return None


def ssl_error_text(err: ssl.SSLError) -> str:
    """An OpenSSL error in an operator's words."""
    reason = getattr(err, "reason", None) or ""
    if reason in _SSL_REASONS:
        return _SSL_REASONS[reason]
    return reason.replace("_", " ").lower() if reason else str(err)


def network_error(where: str, err: OSError, stage: str) -> CollectorError:
    """Map a socket or TLS error during `stage` (connect, TLS handshake, TDS pre-login) to a reason."""
    if isinstance(err, ssl.SSLEOFError | ssl.SSLZeroReturnError):
        return CollectorError(where, Reason.TLS_ERROR, f"connection closed by the server during the {stage}")
    if isinstance(err, ssl.SSLError):
        return CollectorError(where, Reason.TLS_ERROR, f"{stage} failed: {ssl_error_text(err)}")
    if isinstance(err, TimeoutError):
        return CollectorError(where, Reason.TIMEOUT, f"no answer during the {stage}")
    if isinstance(err, ConnectionRefusedError):
        return CollectorError(where, Reason.CONNECTION_REFUSED, "connection refused")
    if isinstance(err, socket.gaierror):
        return CollectorError(where, Reason.UNREACHABLE, f"cannot resolve the name: {err.strerror or err}")
    if isinstance(err, ConnectionResetError | BrokenPipeError | ConnectionAbortedError):
        reason = Reason.TLS_ERROR if "TLS" in stage else Reason.PROTOCOL_ERROR
        return CollectorError(where, reason, f"connection reset by the server during the {stage}")
    return CollectorError(where, Reason.UNREACHABLE, f"{stage} failed: {err.strerror or type(err).__name__}")


def connect(address: str, port: int, deadline: Deadline, where: str) -> socket.socket:
    """A TCP connection to one address, within the deadline."""
    deadline.check(where)
    try:
        sock = socket.create_connection((address.strip("[]"), port), timeout=max(deadline.remaining(), 0.001))
    except OSError as err:
        raise network_error(where, err, "connect") from err
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return sock


def presented_chain(tls: Any) -> tuple[bytes, ...]:
    """The chain exactly as the server sent it (leaf first), even when the handshake failed later."""
    getter = getattr(tls, "get_unverified_chain", None)  # public from Python 3.13
    if getter is None:
        # Python 3.10-3.12 have the same call on the C object only.
        getter = getattr(getattr(tls, "_sslobj", None), "get_unverified_chain", None)
    if getter is not None:
        try:
            chain = getter() or []
        except (ssl.SSLError, ValueError):
            chain = []
        ders = []
        for item in chain:
            ders.append(item if isinstance(item, bytes) else item.public_bytes(ssl._ssl.ENCODING_DER))  # type: ignore[attr-defined]
        if ders:
            return tuple(ders)
    try:
        leaf = tls.getpeercert(binary_form=True)
    except (ssl.SSLError, ValueError, AttributeError):
        leaf = None
    return (leaf,) if leaf else ()


def _facts(tls: ssl.SSLSocket | ssl.SSLObject, chain: tuple[bytes, ...]) -> Handshake:
    version = tls.version() or ""
    cipher = tls.cipher()
    return Handshake(
        chain,
        TLS_VERSION_NAMES.get(version, version),
        cipher[0] if cipher else "",
        tls.selected_alpn_protocol() or "",
    )


def tls_handshake(
    sock: socket.socket, server_name: str | None, context: ssl.SSLContext, deadline: Deadline, where: str
) -> tuple[ssl.SSLSocket, Handshake]:
    """Handshake on a connected socket; a failure after the certificate arrived is kept in Handshake.error."""
    tls = context.wrap_socket(sock, server_hostname=sni_name(server_name), do_handshake_on_connect=False)
    tls.settimeout(max(deadline.remaining(), 0.001))
    try:
        tls.do_handshake()
    except OSError as err:
        error = network_error(where, err, "TLS handshake")
        chain = presented_chain(tls)
        if not chain:
            tls.close()
            raise error from err
        return tls, Handshake(chain, error=error)
    return tls, _facts(tls, presented_chain(tls))


def memory_handshake(
    channel: RecordChannel, server_name: str | None, context: ssl.SSLContext, deadline: Deadline, where: str
) -> Handshake:
    """Handshake through a channel that wraps TLS records (TDS 7.x carries them in PRELOGIN packets)."""
    incoming, outgoing = ssl.MemoryBIO(), ssl.MemoryBIO()
    tls = context.wrap_bio(incoming, outgoing, server_side=False, server_hostname=sni_name(server_name))
    while True:
        try:
            tls.do_handshake()
        except ssl.SSLWantReadError:
            pass
        except ssl.SSLError as err:
            return _failed(tls, network_error(where, err, "TLS handshake"), err)
        else:
            flight = outgoing.read()
            if flight:
                # TLS 1.3: the client's Finished still has to reach the server.
                with contextlib.suppress(CollectorError):
                    channel.send(flight)
            return _facts(tls, presented_chain(tls))
        try:
            flight = outgoing.read()
            if flight:
                channel.send(flight)
            deadline.check(where)
            data = channel.receive()
        except CollectorError as err:
            return _failed(tls, err, None)
        if data:
            incoming.write(data)
        else:
            incoming.write_eof()


def _failed(tls: ssl.SSLObject, error: CollectorError, cause: Exception | None) -> Handshake:
    chain = presented_chain(tls)
    if chain:
        return Handshake(chain, error=error)
    if cause is None:
        raise error
    raise error from cause


def close_quietly(tls: ssl.SSLSocket | socket.socket) -> None:
    """Send close_notify without waiting for the server's, then close."""
    try:
        if isinstance(tls, ssl.SSLSocket):
            tls.setblocking(False)
            tls.unwrap()
    except (OSError, ValueError):
        pass
    finally:
        tls.close()
