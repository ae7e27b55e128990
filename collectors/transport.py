"""Transport under the TLS probes: TCP connections within a deadline, and the errors they map to."""

from __future__ import annotations

import ipaddress
import socket
from typing import Protocol

from collectors.base import Deadline
from collectors.errors import CollectorError, Reason

RECEIVE_SIZE = 65536


class Channel(Protocol):
    """Carries bytes to and from the server: a TCP socket, or TDS packets around TLS records."""

    def send(self, data: bytes) -> None:
        """Send bytes to the server."""

    def receive(self) -> bytes:
        """The next bytes from the server; b'' once the server closed the connection."""


def network_error(where: str, err: OSError, stage: str) -> CollectorError:
    """Map a socket error during `stage` (connect, TLS handshake, TDS pre-login...) to a reason."""
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
    """A TCP connection to one address (or name), within the deadline."""
    deadline.check(where)
    host = address.strip("[]")
    try:
        family = socket.AF_INET6 if ipaddress.ip_address(host).version == 6 else socket.AF_INET
    except ValueError:
        family = None
    try:
        if family is None:
            sock = socket.create_connection((host, port), timeout=max(deadline.remaining(), 0.001))
        else:
            # An address needs no resolver round (create_connection would still call getaddrinfo).
            sock = socket.socket(family, socket.SOCK_STREAM)
            try:
                sock.settimeout(max(deadline.remaining(), 0.001))
                sock.connect((host, port))
            except OSError:
                sock.close()
                raise
    except OSError as err:
        raise network_error(where, err, "connect") from err
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return sock


class SocketChannel:
    """Bytes straight on a TCP socket, each call bounded by the deadline."""

    def __init__(self, sock: socket.socket, deadline: Deadline, where: str, stage: str = "TLS handshake") -> None:
        self.sock = sock
        self.deadline = deadline
        self.where = where
        self.stage = stage

    def send(self, data: bytes) -> None:
        """Send everything or raise CollectorError."""
        self.deadline.check(self.where)
        try:
            self.sock.settimeout(max(self.deadline.remaining(), 0.001))
            self.sock.sendall(data)
        except OSError as err:
            raise network_error(self.where, err, self.stage) from err

    def receive(self) -> bytes:
        """Whatever arrived next; b'' when the server closed."""
        self.deadline.check(self.where)
        try:
            self.sock.settimeout(max(self.deadline.remaining(), 0.001))
            return self.sock.recv(RECEIVE_SIZE)
        except OSError as err:
            raise network_error(self.where, err, self.stage) from err
