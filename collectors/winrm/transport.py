"""How certmon reaches a node: endpoint, pywinrm transport (auth, encryption, TLS trust), error reasons."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any, Literal

import requests
from requests.adapters import HTTPAdapter
from winrm import transport as winrm_transport
from winrm.exceptions import (
    InvalidCredentialsError,
    WinRMError,
    WinRMOperationTimeoutError,
    WinRMTransportError,
    WSManFaultError,
)
from winrm.protocol import Protocol

from collectors.boundedhttp import AnswerTooLarge, BoundedAdapter
from collectors.errors import Reason
from collectors.winrm import exchange, negotiate, soap

Transport = Literal["ntlm", "https-basic", "kerberos", "negotiate", "https-negotiate", "credssp"]
TRANSPORTS: tuple[Transport, ...] = ("ntlm", "https-basic", "kerberos", "negotiate", "https-negotiate", "credssp")
DEFAULT_PORTS = {
    "ntlm": 5985,
    "https-basic": 5986,
    "kerberos": 5985,
    "negotiate": 5985,
    "https-negotiate": 5986,
    "credssp": 5985,
}
#: CredSSP servers older than protocol version 5 are open to CVE-2018-0886: refused.
CREDSSP_MINIMUM_VERSION = 5
HTTPS_TRANSPORTS = ("https-basic", "https-negotiate")


@dataclass(frozen=True)
class Endpoint:
    """Where and how to reach one node."""

    node: str
    host: str
    port: int
    transport: Transport = "ntlm"
    username: str = ""
    password: str = field(default="", repr=False)
    ca_bundle: str | None = None
    server_thumbprint: str | None = None
    operation_timeout: float = 20.0
    max_envelope_size: int = 512000
    shell_idle_timeout: float = 7200.0
    codepage: int = 65001
    #: negotiate: fall back to NTLM when Kerberos is not possible (off: Kerberos or nothing)
    allow_ntlm: bool = False
    #: negotiate: the SPN is SERVICE/HOST; HOST defaults to `host` (set it when connecting by address)
    spn_service: str = "HTTP"
    spn_host: str = ""

    @property
    def url(self) -> str:
        """The WS-Management URL."""
        scheme = "https" if self.transport in HTTPS_TRANSPORTS else "http"
        host = f"[{self.host}]" if ":" in self.host and not self.host.startswith("[") else self.host
        return f"{scheme}://{host}:{self.port}/wsman"


# Envelope framing and message encryption around an answer of at most MaxEnvelopeSize bytes.
ANSWER_MARGIN = 64 * 1024


def answer_cap(endpoint: Endpoint) -> int:
    """The largest HTTP body a node may send: WS-Management answers stay within the MaxEnvelopeSize asked for."""
    return 2 * endpoint.max_envelope_size + ANSWER_MARGIN


class PinnedAdapter(BoundedAdapter):
    """Checks the server certificate's SHA-1 thumbprint on every new TLS connection."""

    def __init__(self, thumbprint: str, max_body: int) -> None:
        self._thumbprint = thumbprint
        super().__init__(max_body)

    def init_poolmanager(self, *args: Any, **kwargs: Any) -> None:
        """Pools that assert the pinned fingerprint (urllib3 then skips the host-name check)."""
        kwargs["assert_fingerprint"] = self._thumbprint
        super().init_poolmanager(*args, **kwargs)


def open_protocol(endpoint: Endpoint, timeout: float) -> Protocol:
    """A pywinrm Protocol with its HTTP session in place: for NTLM and Kerberos this logs on.

    ValueError when the endpoint cannot work at all (a missing package, a missing user name).
    """
    if endpoint.transport == "kerberos" and not winrm_transport.HAVE_KERBEROS:
        raise ValueError("transport kerberos needs the pykerberos (Linux) or winkerberos (Windows) package")
    if endpoint.transport in negotiate.NEGOTIATE_TRANSPORTS and (missing := negotiate.unavailable_reason()):
        raise ValueError(missing)
    if endpoint.transport == "credssp" and (missing := credssp_unavailable_reason()):
        raise ValueError(missing)
    try:
        protocol = Protocol(endpoint.url, **_protocol_options(endpoint))
    except WinRMError as err:
        raise ValueError(str(err)) from err
    transport = protocol.transport
    # pywinrm passes this to requests as the timeout; floats work although it is typed int.
    transport.read_timeout_sec = timeout  # type: ignore[assignment]
    # The session is built here the way pywinrm's build_session builds it, minus the environment:
    # build_session merges proxy settings through requests' should_bypass_proxies, which sets and
    # deletes os.environ["no_proxy"] without a lock (psf/requests#4997) and raised KeyError with many
    # nodes logging on at once. Nor should a daemon pick up HTTP(S)_PROXY or REQUESTS_CA_BUNDLE.
    session = requests.Session()
    session.trust_env = False
    session.headers.update(transport.default_headers)
    if endpoint.transport not in negotiate.NEGOTIATE_TRANSPORTS:
        session.auth = _authentication(endpoint)
    # Every answer, the logon's 401s included, is read within a size cap and the deadline.
    adapter = BoundedAdapter(answer_cap(endpoint))
    if endpoint.transport in HTTPS_TRANSPORTS:
        # With only a pin, the pin is the trust: chain and host name are not checked.
        session.verify = endpoint.ca_bundle or not endpoint.server_thumbprint
        if endpoint.server_thumbprint:
            adapter = PinnedAdapter(endpoint.server_thumbprint, answer_cap(endpoint))
    adapter.deadline = time.monotonic() + timeout
    session.mount("https://", adapter)
    session.mount("http://", adapter)
    transport.session = session
    try:
        if endpoint.transport in ("ntlm", "kerberos", "credssp"):
            transport.setup_encryption(session)  # the logon: NTLM, Kerberos or CredSSP handshake
            _require_encrypted_answers(transport)
        elif endpoint.transport in negotiate.NEGOTIATE_TRANSPORTS:
            # pywinrm's Encryption only knows its own auth objects; ours has the same two methods.
            transport.encryption = negotiate.log_on(session, endpoint, timeout)  # type: ignore[assignment]
            if transport.encryption is not None:
                _require_encrypted_answers(transport)
    except BaseException:
        transport.close_session()
        raise
    # Logged on: later messages skip requests' per-request machinery (see exchange.py).
    exchange.install(transport)
    return protocol


class UnencryptedAnswerError(WinRMError):
    """The node (or something in the path) answered in clear text where message encryption is required."""


def _require_encrypted_answers(transport: Any) -> None:
    """Refuse clear-text answers: pywinrm passes them through, letting anyone in the path forge the inventory."""
    encryption = transport.encryption
    if encryption is None:
        raise UnencryptedAnswerError("message encryption was not negotiated")
    marker = f'protocol="{encryption.protocol_string.decode()}"'
    parse = encryption.parse_encrypted_response

    def strict(response: requests.Response) -> bytes:
        if marker not in response.headers.get("Content-Type", ""):
            raise UnencryptedAnswerError(
                f"the node answered HTTP {response.status_code} without message encryption; refused"
            )
        return bytes(parse(response))

    encryption.parse_encrypted_response = strict


def credssp_unavailable_reason() -> str | None:
    """Why transport credssp cannot work here (the optional requests-credssp package), or None."""
    try:
        import requests_credssp  # noqa: F401
    except ImportError:
        return "transport credssp needs the requests-credssp package (install certmon[credssp])"
    return None


def _authentication(endpoint: Endpoint) -> requests.auth.AuthBase:
    if endpoint.transport == "credssp":
        from requests_credssp import HttpCredSSPAuth

        # The account's password is delegated to the node: the point of CredSSP (the second hop).
        return HttpCredSSPAuth(endpoint.username, endpoint.password, minimum_version=CREDSSP_MINIMUM_VERSION)
    if endpoint.transport == "ntlm":
        from requests_ntlm import HttpNtlmAuth

        return HttpNtlmAuth(endpoint.username, endpoint.password, send_cbt=True)
    if endpoint.transport == "kerberos":
        from winrm.vendor.requests_kerberos import REQUIRED, HTTPKerberosAuth

        return HTTPKerberosAuth(
            mutual_authentication=REQUIRED,
            force_preemptive=True,
            principal=endpoint.username or None,
            sanitize_mutual_error_response=False,
            service="HTTP",
            send_cbt=True,
        )
    return requests.auth.HTTPBasicAuth(endpoint.username, endpoint.password)


def arm_deadline(protocol: Protocol, at: float) -> None:
    """No exchange on this connection may outlive monotonic time `at` (the watchdog closes it then)."""
    session = protocol.transport.session
    if session is None:
        return
    for adapter in session.adapters.values():
        if isinstance(adapter, BoundedAdapter):
            adapter.deadline = at


def abort_exchanges(protocol: Protocol) -> None:
    """Shut down the connections in use now (a stopping daemon does not wait for a hung node)."""
    session = protocol.transport.session
    if session is None:
        return
    for adapter in list(session.adapters.values()):
        if isinstance(adapter, BoundedAdapter):
            adapter.abort()


def connection_alive(protocol: Protocol, endpoint: Endpoint) -> bool:
    """True when the authenticated keep-alive connection is still open (Basic needs no such thing)."""
    if endpoint.transport == "https-basic":
        return True  # Basic authenticates every request
    session = protocol.transport.session
    if session is None:
        return False
    adapter = session.get_adapter(endpoint.url)
    if not isinstance(adapter, HTTPAdapter):
        return False
    for key in list(adapter.poolmanager.pools.keys()):
        pool = adapter.poolmanager.pools.get(key)
        queue = getattr(getattr(pool, "pool", None), "queue", ())
        for connection in list(queue):
            if connection is not None and getattr(connection, "is_connected", False):
                return True
    return False


def refused(err: BaseException) -> bool:
    """True when the failure is a refused TCP connection, however deep requests wrapped it."""
    seen: set[int] = set()
    current: BaseException | None = err
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        if isinstance(current, ConnectionRefusedError) or "Connection refused" in str(current):
            return True
        current = current.__cause__ or current.__context__ or _inner(current)
    return False


def _inner(err: BaseException) -> BaseException | None:
    for arg in getattr(err, "args", ()):
        if isinstance(arg, BaseException):
            return arg
    reason = getattr(err, "reason", None)
    return reason if isinstance(reason, BaseException) else None


def classify(err: BaseException) -> tuple[Reason, str]:
    """The reason and an operator-readable message for a failure talking to a node."""
    import spnego.exceptions

    if isinstance(err, AnswerTooLarge):
        return Reason.BAD_OUTPUT, f"the node's answer was refused: {_short(err)}"
    if isinstance(err, requests.exceptions.SSLError):
        return Reason.TLS_ERROR, f"TLS handshake failed: {_short(err)}"
    if isinstance(err, requests.Timeout):
        return Reason.TIMEOUT, "no answer before the deadline"
    if isinstance(err, requests.ConnectionError):
        if refused(err):
            return Reason.CONNECTION_REFUSED, "connection refused (is WinRM listening on this port?)"
        return Reason.UNREACHABLE, f"connection failed: {_short(err)}"
    if isinstance(err, InvalidCredentialsError):
        return Reason.AUTH_FAILED, "the server rejected the credentials"
    if type(err).__module__.startswith("requests_credssp"):
        return Reason.AUTH_FAILED, f"CredSSP logon failed: {_credssp_hint(err)}"
    if isinstance(err, PermissionError | spnego.exceptions.SpnegoError):
        return Reason.AUTH_FAILED, f"authentication failed: {_short(err)}"
    if isinstance(err, WSManFaultError):
        code = f" (WSManFault {err.wsman_fault_code})" if err.wsman_fault_code is not None else ""
        return Reason.PROTOCOL_ERROR, f"SOAP fault{code}: {_short(err.reason)}"
    if isinstance(err, WinRMOperationTimeoutError):
        return Reason.TIMEOUT, "the operation timed out on the server"
    if isinstance(err, WinRMTransportError):
        return Reason.PROTOCOL_ERROR, f"unexpected HTTP {err.code} from the WinRM service"
    if isinstance(err, soap.SoapError):
        return Reason.PROTOCOL_ERROR, f"malformed WS-Management reply: {err}"
    if isinstance(err, negotiate.EncryptionError):
        return Reason.PROTOCOL_ERROR, f"the node's sealed answer was refused: {_short(err)}"
    if isinstance(err, WinRMError):
        return Reason.PROTOCOL_ERROR, f"WinRM error: {_short(err)}"
    return Reason.PROTOCOL_ERROR, f"{type(err).__name__}: {_short(err)}"


def _credssp_hint(err: BaseException) -> str:
    """requests-credssp's words, with what to change when the node does not offer CredSSP."""
    text = _short(err)
    if "did not response CredSSP" in text:
        return (
            "the node does not offer CredSSP (on the node: Enable-WSManCredSSP -Role Server; "
            f"or use another second_hop in sources.credentials.rotate) [{text}]"
        )
    return text


def _short(err: BaseException | str, limit: int = 200) -> str:
    text = " ".join(str(err).split())
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _protocol_options(endpoint: Endpoint) -> dict[str, Any]:
    """pywinrm Protocol arguments; timeouts are re-armed per request from the deadline."""
    # negotiate: pywinrm's kerberos Transport needs no user name; its session and encryption are ours.
    auth = {
        "ntlm": "ntlm",
        "kerberos": "kerberos",
        "https-basic": "basic",
        "negotiate": "kerberos",
        "https-negotiate": "kerberos",
        "credssp": "credssp",
    }.get(endpoint.transport)
    if auth is None or (auth == "basic" and not endpoint.url.startswith("https://")):
        # Never plain HTTP without message encryption: Basic credentials and the inventory in clear text.
        raise ValueError(f"WinRM transport {endpoint.transport!r} would send credentials unencrypted")
    return {
        "transport": auth,
        "username": endpoint.username or None,
        "password": endpoint.password,
        "message_encryption": "always" if endpoint.transport in ("ntlm", "kerberos", "credssp") else "never",
        "read_timeout_sec": 30,
        "operation_timeout_sec": 20,
    }
