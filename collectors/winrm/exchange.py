"""One SOAP exchange on a logged-on connection, without requests' per-message machinery.

pywinrm's `Transport.send_message` prepares every message through `requests.Session` (merging the
session's headers, cookies and proxy settings, calling the authentication handler) and sends it
through `Session.send` (hooks, cookie extraction, redirects), urllib3's pool and http.client, which
parses each answer's header through the email package. Profiled per thread
(benchmarks/bench_winrm.py --profile), that was the largest part of the collector's CPU per node,
repeated for each of the three messages of every cycle, although after the logon nothing in it
changes from one message to the next.

`install` replaces the transport's `send_message` with one that does the same exchange with less:

* the request head (request line, Host, the fields `Session.prepare_request` gives a message on
  this session, the `multipart/encrypted` content type pywinrm's encryption sets) is built once;
  per message only the body and its length change;
* the message is sealed in the framing pywinrm writes (MS-WSMV 2.2.9.1.1) by the logged-on security
  context itself (negotiate.py's `seal` and `open_sealed`: requests-ntlm's NTLM context, or ours for
  Kerberos), and the answer opened in place, its signature checked and its length compared, without
  pywinrm's copies of a Receive answer around the decryption; an answer without message encryption
  is refused by the strict parse from transport.py;
* the request is written on the logged-on connection taken from the session adapter's pool, and
  the answer read by rawhttp.py within BoundedAdapter's bounds (size cap, deadline); when the pool
  holds no live connection the message goes through the adapter (`BoundedAdapter.send`) instead;
* HTTP errors end as pywinrm ends them (401: InvalidCredentialsError; other 4xx/5xx:
  WinRMTransportError with the opened answer, from which Protocol.send_message reads the WSManFault).

Left out on purpose: a redirect is not followed (a node has no reason to send one, and a sealed
message is not sent elsewhere), and a 401 after the logon is not answered with a new NTLM handshake
on the same connection (the message in flight was sealed with the old keys and could not be
replayed): the session retries once on a fresh connection instead. Sessions this does not cover
keep pywinrm's path unchanged: Basic and pywinrm's own Kerberos handler (its hook checks the
server's token on answers), and a session that received cookies during the logon.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any
from urllib.parse import urlsplit

import requests
from requests.structures import CaseInsensitiveDict
from winrm.encryption import Encryption
from winrm.exceptions import InvalidCredentialsError, WinRMTransportError

from collectors.boundedhttp import BoundedAdapter
from collectors.winrm import negotiate, rawhttp

_ENCRYPTED_TYPE = 'multipart/encrypted;protocol="{}";boundary="Encrypted Boundary"'


def _ntlm_auth() -> type | None:
    try:
        from requests_ntlm import HttpNtlmAuth
    except ImportError:  # pragma: no cover - a dependency of pywinrm
        return None
    return HttpNtlmAuth


class _Sealing:
    """How messages are sealed and answers opened on one session."""

    def __init__(
        self, seal: Callable[[bytes], bytes], content_type: str, open_answer: Callable[[Any], bytes] | None = None
    ) -> None:
        self.seal = seal
        self.content_type = content_type
        #: opens an answer in place of pywinrm's parse_encrypted_response (None: that one)
        self.open_answer = open_answer


def _ntlm_context(session: requests.Session) -> Any:
    """The logged-on NTLM security context requests-ntlm keeps (behind its ntlm-auth shim), or None."""
    context = getattr(getattr(session.auth, "session_security", None), "_context", None)
    if context is None or not hasattr(context, "wrap_winrm") or not hasattr(context, "unwrap_winrm"):
        return None
    return context


def _sealer(transport: Any, host: str) -> _Sealing | None:
    """How a message is sealed on this session, and the content type that says so; None: not a known kind."""
    encryption = transport.encryption
    if isinstance(encryption, negotiate.NegotiateEncryption):
        return _Sealing(encryption.seal, _ENCRYPTED_TYPE.format(negotiate.PROTOCOL))
    if type(encryption) is not Encryption or encryption.protocol != "ntlm":
        return None
    session = transport.session
    content_type = _ENCRYPTED_TYPE.format(encryption.protocol_string.decode())
    if _ntlm_context(session) is not None:
        # The same MS-WSMV 2.2.9.1.1 framing pywinrm writes, sealed and opened by the security context itself:
        # pywinrm's path splits and copies a Receive answer several times around the decryption.
        marker = f'protocol="{encryption.protocol_string.decode()}"'

        def seal_ntlm(message: bytes) -> bytes:
            return negotiate.seal(_ntlm_context(session), message)

        def open_ntlm(response: Any) -> bytes:
            if marker not in response.headers.get("Content-Type", ""):
                # Not sealed: the strict parse installed by transport.py refuses it with its own error.
                return bytes(transport._get_message_response_text(response))
            return negotiate.open_sealed(_ntlm_context(session), response.content)

        return _Sealing(seal_ntlm, content_type, open_ntlm)
    end = encryption.MIME_BOUNDARY + b"--\r\n"
    encrypt = encryption._encrypt_message

    def seal(message: bytes) -> bytes:
        return encrypt(message, host) + end

    return _Sealing(seal, content_type)


def install(transport: Any) -> bool:
    """Give a logged-on pywinrm transport the direct exchange; False (nothing changed) when it does not apply."""
    session = transport.session
    if session is None or session.cookies:
        return False
    ntlm = _ntlm_auth()
    if session.auth is not None and (ntlm is None or type(session.auth) is not ntlm):
        return False
    endpoint = transport.endpoint
    sealer = None
    if transport.encryption is not None:
        sealer = _sealer(transport, urlsplit(endpoint).hostname or "")
        if sealer is None:
            return False
    # The request Session.prepare_request makes of a message on this session: its URL and headers.
    template = session.prepare_request(requests.Request("POST", endpoint, data=b"-"))
    adapter = session.get_adapter(template.url)
    # The answer read on the connection's socket (rawhttp.py) needs the bounds of BoundedAdapter.
    direct = isinstance(adapter, BoundedAdapter)
    fixed = CaseInsensitiveDict(template.headers)
    fixed.pop("Content-Length", None)
    if sealer is not None:
        fixed["Content-Type"] = sealer.content_type
    fixed["Accept-Encoding"] = "identity"  # what BoundedAdapter asks for
    # Everything but the length, once: "POST /wsman HTTP/1.1", Host, then the session's fields.
    head_start = rawhttp.request_head(template.url or "", fixed)[:-2]
    pools: list[Any] = []
    original = transport.send_message
    opener = sealer.open_answer if sealer is not None else None

    def open_answer(response: requests.Response) -> bytes:
        if opener is not None:
            return opener(response)
        return bytes(transport._get_message_response_text(response))

    def pool_for(request: requests.PreparedRequest) -> Any:
        if not pools or pools[0].pool is None:  # a closed pool has no queue left
            pools[:] = [adapter.get_connection_with_tls_context(request, session.verify, {}, session.cert)]
        return pools[0]

    def send_message(message: str | bytes) -> bytes:
        if transport.session is not session or session.cookies:
            return bytes(original(message))
        data = message.encode("utf-8") if isinstance(message, str) else message
        body = data if sealer is None else sealer.seal(data)
        request = requests.PreparedRequest()
        request.method = "POST"
        request.url = template.url
        request.headers = fixed
        request.body = body
        request.hooks = {"response": []}
        timeout = transport.read_timeout_sec
        response = None
        if direct:
            head = b"%sContent-Length: %d\r\n\r\n" % (head_start, len(body))
            response = rawhttp.exchange(pool_for(request), head + body, timeout, adapter.deadline, adapter.max_body)
        if response is None:
            headers = CaseInsensitiveDict(template.headers)
            if sealer is not None:
                headers["Content-Type"] = sealer.content_type
            headers["Content-Length"] = str(len(body))
            request.headers = headers
            response = adapter.send(
                request, stream=False, timeout=timeout, verify=session.verify, cert=session.cert, proxies={}
            )
            # The whole body first, within the adapter's cap and deadline, as Session.send reads it (stream=False).
            response.content  # noqa: B018
        else:
            response.request = request
            response.url = request.url or ""
        status = response.status_code
        if status == 401:
            raise InvalidCredentialsError("the specified credentials were rejected by the server")
        if 400 <= status < 600:
            text = open_answer(response) if response.content else b""
            raise WinRMTransportError("http", status, text.decode())
        return open_answer(response)

    transport.send_message = send_message
    return True
