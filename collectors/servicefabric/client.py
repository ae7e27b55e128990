"""HTTPS to the Service Fabric gateway with a client certificate, the server verified by pin or CA bundle.

Why our own small client rather than `requests`: the client key stays in memory (see
`identity`); the server is checked the way `Connect-ServiceFabricCluster -ServerCertThumbprint`
does, by the presented leaf's thumbprint, which urllib3 cannot do for a list of pins (a rotation
changes the gateway's certificate, so operators pin the old and the new one); the chain is judged
by `collectors.tls.chain` at the injected clock, so a failure says "expired", "untrusted" or "wrong
name" rather than an OpenSSL code; and every read and write honours the collection's deadline.

The handshake runs with verification off, then the server is verified before the first request
is sent. A server that refuses the client certificate (an alert during the handshake, or after it
under TLS 1.3, or HTTP 401/403) is `auth_failed`; a server certmon does not trust is `tls_error`.
"""

from __future__ import annotations

import http.client
import json
import selectors
import socket
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlencode, urlsplit

from OpenSSL import SSL

from collectors.base import Deadline
from collectors.certificate import Certificate, certificate_from_der
from collectors.errors import CertificateError, CollectorError, Reason
from collectors.jsonbudget import JsonTooLarge, loads_within
from collectors.servicefabric.identity import ClientIdentity
from collectors.tls.chain import TrustCache, verify_chain
from collectors.tls.client import SocketTlsClient, TlsStream, tls_failure
from collectors.transport import RECEIVE_SIZE, connect, network_error

DEFAULT_PORT = 19080
# How long to wait for a TLS 1.3 server's first records (session tickets or an alert) after the handshake.
POST_HANDSHAKE_WAIT = 0.5
# The largest gateway answers (cluster health with node events, applications with their
# parameters, a cluster configuration as a JSON string) are a few MiB at most.
MAX_BODY = 8 * 1024 * 1024
# What a server says, in our TLS error texts, when it does not accept the client certificate.
_CLIENT_REJECTED = (
    "rejected the client certificate",
    "requires a client certificate",
    "alert unknown ca",
    "alert certificate unknown",
    "alert access denied",
    "alert unsupported certificate",
    "alert certificate revoked",
    "alert certificate expired",
)

Clock = Callable[[], datetime]


@dataclass(frozen=True)
class GatewayUrl:
    """One gateway address: https://host:port, and the address to connect to."""

    url: str
    host: str
    port: int
    address: str

    @classmethod
    def parse(cls, url: str, resolve: Mapping[str, str] | None = None) -> GatewayUrl:
        """An https:// URL (path ignored); `resolve` maps the host to the address to connect to."""
        parts = urlsplit(url.strip())
        if parts.scheme.lower() != "https" or not parts.hostname:
            raise ValueError(f"{url!r} is not an https:// URL with a host name")
        host = parts.hostname
        port = parts.port or DEFAULT_PORT
        origin = f"https://{f'[{host}]' if ':' in host else host}:{port}"
        return cls(origin, host, port, (resolve or {}).get(host, host))


@dataclass(frozen=True)
class ServerTrust:
    """How the gateway's certificate is verified: pinned thumbprints when given, else a CA bundle.

    `ca_bundle` None with no pins means the system's trusted roots. `server_name` is the name the
    certificate must carry (default: the URL's host).
    """

    thumbprints: tuple[str, ...] = ()
    ca_bundle: Path | None = None
    server_name: str | None = None


class GatewayError(CollectorError):
    """The gateway answered with an error status; keeps the status and Service Fabric's error code."""

    def __init__(self, source: str, reason: Reason, message: str, status: int, code: str = "") -> None:
        super().__init__(source, reason, message)
        self.status = status
        self.code = code


def client_context(identity: ClientIdentity | None) -> SSL.Context:
    """TLS 1.2 or later with the client certificate; the server is verified by `GatewaySession`."""
    context = SSL.Context(SSL.TLS_CLIENT_METHOD)
    context.set_min_proto_version(SSL.TLS1_2_VERSION)
    context.set_verify(SSL.VERIFY_NONE)
    if identity is not None:
        context.use_certificate(identity.certificate.parsed)
        context.use_privatekey(identity.key)
        for extra in identity.chain:
            context.add_extra_chain_cert(extra)
        context.check_privatekey()
    return context


def fabric_error(body: bytes) -> tuple[str, str]:
    """(code, message) of a FabricError body {"Error": {"Code", "Message"}}, or ("", text)."""
    try:
        document = loads_within(body, 1000)  # an error is a few values; more is not an error body
    except (UnicodeDecodeError, ValueError, RecursionError):
        return "", body[:200].decode("utf-8", "replace").strip()
    error = document.get("Error") if isinstance(document, dict) else None
    if isinstance(error, dict):
        return str(error.get("Code", "")), str(error.get("Message", ""))
    return "", ""


class _Connection(http.client.HTTPConnection):
    """One HTTPS connection: handshake with the client certificate, then the server verified."""

    def __init__(self, session: GatewaySession) -> None:
        gateway = session.gateway
        super().__init__(gateway.host, gateway.port, timeout=max(session.deadline.remaining(), 0.001))
        self.session = session

    def connect(self) -> None:
        """TCP, TLS, and the server's certificate checked before anything is sent."""
        session = self.session
        gateway = session.gateway
        where = gateway.url
        sock = connect(gateway.address, gateway.port, session.deadline, where)
        try:
            client = SocketTlsClient(session.context, sock, session.deadline, gateway.host, where)
            handshake = client.handshake()
            if handshake.error is not None:
                raise session.rejection(handshake.error)
            session.accept_server(handshake.chain)
            session.await_verdict(client, sock)
        except CollectorError:
            sock.close()
            raise
        self.sock = TlsStream(client, sock)


class GatewaySession:
    """Requests to one gateway over one verified connection (kept alive between requests)."""

    def __init__(
        self,
        gateway: GatewayUrl,
        identity: ClientIdentity | None,
        trust: ServerTrust,
        deadline: Deadline,
        *,
        context: SSL.Context | None = None,
        trust_cache: TrustCache | None = None,
        clock: Clock,
    ) -> None:
        self.gateway = gateway
        self.identity = identity
        self.trust = trust
        self.deadline = deadline
        self.context = context or client_context(identity)
        self.trust_cache = trust_cache or TrustCache()
        self.clock = clock
        #: the chain the gateway presented (leaf first), once connected
        self.presented: tuple[Certificate, ...] = ()
        self.requests = 0
        self._connection: _Connection | None = None

    @property
    def who(self) -> str:
        """The client certificate, for messages."""
        return f"client certificate {self.identity.thumbprint}" if self.identity else "no client certificate"

    def rejection(self, error: CollectorError) -> CollectorError:
        """A TLS failure that means the server refused our client certificate becomes auth_failed."""
        if error.reason is Reason.TLS_ERROR and any(text in error.message for text in _CLIENT_REJECTED):
            return CollectorError(
                self.gateway.url, Reason.AUTH_FAILED, f"the gateway refused {self.who}: {error.message}"
            )
        return CollectorError(self.gateway.url, error.reason, error.message)

    def await_verdict(self, client: SocketTlsClient, sock: socket.socket) -> None:
        """Under TLS 1.3 the server judges the client certificate after the handshake: read its first records.

        A server that accepts sends session tickets, one that refuses sends an alert and closes. Sending
        the request first would race with that close (the write meets a reset and the alert is never
        read), so the refusal would look like a network error instead of `auth_failed`.
        """
        if self.identity is None or client.connection.get_protocol_version_name() != "TLSv1.3":
            return
        # selectors, not select(): select() fails for descriptors above 1,023.
        with selectors.DefaultSelector() as selector:
            selector.register(sock, selectors.EVENT_READ)
            ready = selector.select(min(POST_HANDSHAKE_WAIT, self.deadline.remaining()))
        if not ready:
            return  # a server that sends no tickets: nothing to learn before the request
        try:
            data = client.connection.recv(RECEIVE_SIZE)
        except SSL.WantReadError:
            return
        except SSL.Error as err:
            raise self.rejection(tls_failure(self.gateway.url, err, "TLS session")) from err
        client._pending += data

    def accept_server(self, chain: Sequence[bytes]) -> None:
        """Verify the presented chain by pin or CA bundle; tls_error naming what was presented."""
        where = self.gateway.url
        if not chain:
            raise CollectorError(where, Reason.TLS_ERROR, "the gateway presented no certificate")
        try:
            self.presented = tuple(certificate_from_der(der, where) for der in chain)
        except CertificateError as err:
            raise CollectorError(where, Reason.TLS_ERROR, f"the gateway's certificate cannot be parsed: {err}") from err
        leaf = self.presented[0]
        described = f"{leaf.thumbprint} ({leaf.subject or 'no subject'})"
        if self.trust.thumbprints:
            if leaf.thumbprint not in self.trust.thumbprints:
                pins = ", ".join(self.trust.thumbprints)
                message = f"the gateway presented {described}, which is not a pinned thumbprint ({pins})"
                raise CollectorError(where, Reason.TLS_ERROR, message)
            return
        store = self.trust_cache.get(self.trust.ca_bundle)
        name = self.trust.server_name or self.gateway.host
        verdict = verify_chain([c.parsed for c in self.presented], name, store, self.clock())
        if not verdict.valid:
            raise CollectorError(
                where,
                Reason.TLS_ERROR,
                f"the gateway's certificate {described} does not validate against {store.origin}: "
                f"{verdict.error}: {verdict.message}",
            )

    def connect(self) -> None:
        """Connect and verify the server now rather than on the first request."""
        self._connection_now().connect()

    def _connection_now(self) -> _Connection:
        if self._connection is None:
            self._connection = _Connection(self)
        return self._connection

    def request(self, method: str, path: str, params: Mapping[str, str], body: Any = None) -> tuple[int, bytes]:
        """(status, body) of one request; CollectorError for anything but an HTTP answer."""
        query = urlencode(dict(params))
        target = f"{path}?{query}" if query else path
        url = f"{self.gateway.url}{target}"
        payload = None if body is None else json.dumps(body).encode()
        headers = {"Accept": "application/json", "User-Agent": "certmon"}
        if payload is not None:
            headers["Content-Type"] = "application/json; charset=utf-8"
        self.deadline.check(url)
        connection = self._connection_now()
        try:
            connection.request(method, target, body=payload, headers=headers)
            response = connection.getresponse()
            data = response.read(MAX_BODY + 1)
        except CollectorError as err:
            self.close()
            raise CollectorError(url, *_parts(self.rejection(err))) from err
        except http.client.HTTPException as err:
            self.close()
            raise CollectorError(url, Reason.PROTOCOL_ERROR, f"invalid HTTP response: {type(err).__name__}") from err
        except TimeoutError as err:
            self.close()
            raise CollectorError(url, Reason.TIMEOUT, "no answer within the deadline") from err
        except OSError as err:
            self.close()
            raise network_error(url, err, "HTTP request") from err
        self.requests += 1
        if response.will_close:
            self.close()
        if len(data) > MAX_BODY:
            raise CollectorError(url, Reason.PARSE_ERROR, f"answer is larger than {MAX_BODY} bytes")
        return response.status, data

    def call(self, method: str, path: str, params: Mapping[str, str], body: Any = None) -> Any:
        """A request whose success is 200 or 202; the parsed JSON answer (None when empty)."""
        status, data = self.request(method, path, params, body)
        url = f"{self.gateway.url}{path}"
        if status not in (200, 202):
            raise self.status_error(url, status, data)
        if not data.strip():
            return None
        try:
            return loads_within(data)
        except JsonTooLarge as err:
            raise CollectorError(url, Reason.BAD_OUTPUT, f"the answer is refused: {err}") from err
        except (UnicodeDecodeError, ValueError, RecursionError) as err:
            raise CollectorError(url, Reason.BAD_OUTPUT, f"the answer is not JSON: {err}") from err

    def status_error(self, url: str, status: int, data: bytes) -> GatewayError:
        """The error for an HTTP status other than success, with Service Fabric's code and message."""
        code, message = fabric_error(data)
        text = f"HTTP {status}" + (f" {code}" if code else "") + (f": {message}" if message else "")
        if status in (401, 403):
            return GatewayError(url, Reason.AUTH_FAILED, f"the gateway refused {self.who}: {text}", status, code)
        if status == 404:
            return GatewayError(url, Reason.NOT_FOUND, text, status, code)
        return GatewayError(url, Reason.HTTP_ERROR, text, status, code)

    def get(self, path: str, params: Mapping[str, str]) -> Any:
        """GET and parse JSON."""
        return self.call("GET", path, params)

    def close(self) -> None:
        """Close the connection (a later request opens a new one)."""
        if self._connection is not None:
            self._connection.close()
            self._connection = None


def _parts(error: CollectorError) -> tuple[Reason, str]:
    return error.reason, error.message
