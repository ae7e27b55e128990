"""WinRM logon with Negotiate/Kerberos as the service's own identity, and SPNEGO message encryption.

No password is needed: pyspnego takes the service's credentials from SSPI on Windows (the logon of
the service account, a gMSA included) and from GSSAPI on Linux (the credential cache named by
KRB5CCNAME, or the client keytab named by KRB5_CLIENT_KTNAME, from which MIT Kerberos gets a ticket
by itself). An explicit user name (with or without a password) is still possible.

Over HTTP (5985) every SOAP message is sealed with the security context, framed as MS-WSMV 2.2.9.1.1
describes (`multipart/encrypted; protocol="application/HTTP-SPNEGO-session-encrypted"`); Kerberos puts
the wrap token's header before the sealed data (pyspnego's `wrap_winrm` does the IOV wrap). Over
HTTPS (5986) TLS protects the messages and the logon is bound to the server certificate
(`tls-server-end-point` channel bindings, RFC 5929), so a relayed ticket is refused by the node.
"""

from __future__ import annotations

import base64
import binascii
import re
import struct
import sys
from typing import Any

import requests

MAX_LEGS = 6
MAX_TOKEN_BYTES = 64 * 1024
PROTOCOL = "application/HTTP-SPNEGO-session-encrypted"
BOUNDARY = b"--Encrypted Boundary"
_LENGTH = re.compile(rb"Length=(\d+)")
_PAYLOAD_TYPE = b"\tContent-Type: application/octet-stream\r\n"
_SEPARATOR = BOUNDARY + b"\r\n"
_END = BOUNDARY + b"--\r\n"
NEGOTIATE_TRANSPORTS = ("negotiate", "https-negotiate")


class NegotiateAuthError(PermissionError):
    """The Kerberos/Negotiate logon failed; the message says why in the operator's words, never a secret."""


class EncryptionError(Exception):
    """A sealed message could not be built or opened with the connection's security context."""


def unavailable_reason() -> str | None:
    """Why Kerberos cannot work in this Python (None when it can)."""
    if sys.platform == "win32":
        return None  # SSPI through sspilib, a dependency of pyspnego on Windows
    from spnego._gss import HAS_GSSAPI

    if not HAS_GSSAPI:
        return (
            "transport negotiate needs Kerberos (GSSAPI) on Linux: install certmon with the 'kerberos' extra "
            "(pip install 'certmon[kerberos]', which builds against MIT Kerberos: libkrb5-dev and a C compiler)"
        )
    return None


def describe_winrm_auth(transport: str, username: str, has_password: bool, allow_ntlm: bool, spn_service: str) -> str:
    """One line for check-config: whose credentials, which protocol, what protects the messages."""
    if transport not in NEGOTIATE_TRANSPORTS:
        protection = "TLS" if transport.startswith("https-") else "message encryption"
        who = f"{username} with a password" if has_password else (username or "the current Kerberos ticket")
        return f"{transport} as {who}; {protection}"
    if username and has_password:
        who = f"{username} with a password"
    elif username:
        who = f"{username}'s Kerberos ticket (no password)"
    else:
        who = (
            "the service's own logon, no password (Windows: SSPI, a gMSA works; "
            "Linux: KRB5CCNAME ccache or KRB5_CLIENT_KTNAME keytab)"
        )
    fallback = "NTLM fallback allowed" if allow_ntlm else "Kerberos only"
    protection = "TLS with channel binding" if transport == "https-negotiate" else "message encryption"
    return f"{transport} ({fallback}) as {who}; SPN {spn_service}/<node host>; {protection}"


def _hint(text: str, spn: str) -> str:
    """An operator's reading of a GSSAPI/SSPI failure (the library's words follow it)."""
    lowered = text.lower()
    if re.search(r"client\b.*not found in kerberos database", lowered):
        return "the account is not known to the KDC (on Linux name it as user@REALM)"
    unknown_spn = re.search(r"server\b.*not found in kerberos database", lowered)
    if unknown_spn or "target principal name is incorrect" in lowered or "target is unknown" in lowered:
        return f"the node's SPN {spn} is not known to the KDC (check with setspn -Q {spn}; connect by that name)"
    wrong_password = ("preauthentication failed", "password incorrect", "logon attempt failed", "decrypt integrity")
    if any(words in lowered for words in wrong_password):
        return "the KDC refused the account's password"
    if "clock skew" in lowered or "time skew" in lowered:
        return "clock skew between this host, the KDC and the node is too large (5 minutes by default)"
    if "expired" in lowered:
        return "the Kerberos ticket has expired (renew it, or use a keytab with KRB5_CLIENT_KTNAME)"
    if (
        "no credentials" in lowered
        or "no kerberos credentials" in lowered
        or "credentials cache" in lowered
        or "not found in keytab" in lowered
        or "no key table" in lowered
        or "cannot find kdc" in lowered
    ):
        return "no Kerberos ticket for the service account (kinit, a keytab in KRB5_CLIENT_KTNAME, the Windows logon)"
    if "no authority could be contacted" in lowered or "cannot contact any kdc" in lowered:
        return "no KDC (domain controller) answered"
    return "Kerberos/Negotiate logon failed"


def _describe(err: BaseException, endpoint: Any) -> str:
    """Hint plus the library's own message (its GSSAPI minor message first), on one line, bounded."""
    text = " ".join(str(err).split())
    hint = _hint(text, f"{endpoint.spn_service}/{endpoint.spn_host or endpoint.host}")
    minor = text.rpartition("Minor (")[2].partition("): ")[2] if "Minor (" in text else ""
    detail = minor or text
    if len(detail) > 160:
        detail = detail[:157] + "..."
    return f"{hint}: {detail}" if detail else hint


def _library_errors() -> tuple[type[BaseException], ...]:
    """What pyspnego and the Kerberos bindings under it raise for a failed logon."""
    import spnego.exceptions

    errors: list[type[BaseException]] = [spnego.exceptions.SpnegoError, ValueError]
    try:
        from krb5 import Krb5Error  # kinit with an explicit password

        errors.append(Krb5Error)
    except ImportError:
        pass
    try:
        from gssapi.raw.misc import GSSError

        errors.append(GSSError)
    except ImportError:
        pass
    return tuple(errors)


def client_context(endpoint: Any, channel_bindings: Any = None) -> Any:
    """A pyspnego client context for the node's SPN with the service's (or the named account's) credentials."""
    import spnego

    protocol = "negotiate" if endpoint.allow_ntlm else "kerberos"
    flags = (
        spnego.ContextReq.mutual_auth
        | spnego.ContextReq.integrity
        | spnego.ContextReq.confidentiality
        | spnego.ContextReq.sequence_detect
        | spnego.ContextReq.replay_detect
    )
    try:
        return spnego.client(
            endpoint.username or None,
            endpoint.password or None,
            hostname=endpoint.spn_host or endpoint.host,
            service=endpoint.spn_service,
            channel_bindings=channel_bindings,
            context_req=flags,
            protocol=protocol,
        )
    except _library_errors() as err:
        raise NegotiateAuthError(_describe(err, endpoint)) from None


def log_on(session: requests.Session, endpoint: Any, timeout: float) -> NegotiateEncryption | None:
    """Authenticate the session's keep-alive connection; the sealing context over HTTP, None over HTTPS."""
    https = endpoint.url.startswith("https://")
    bindings = _channel_bindings(session, endpoint.url, timeout) if https else None
    context = client_context(endpoint, bindings)
    try:
        token = context.step()
        for _ in range(MAX_LEGS):
            response = session.post(
                endpoint.url,
                data=b"",
                headers={"Authorization": f"Negotiate {base64.b64encode(token or b'').decode()}"},
                timeout=timeout,
            )
            reply = _server_token(response)
            response.close()
            if response.status_code == 200:
                if reply is not None and not context.complete:
                    context.step(reply)  # mutual authentication: the node proves its own key
                if not context.complete:
                    raise NegotiateAuthError("the node accepted the logon without mutual authentication; refused")
                break
            if response.status_code != 401:
                raise NegotiateAuthError(f"unexpected HTTP {response.status_code} during the Negotiate logon")
            if reply is None:
                raise NegotiateAuthError(
                    "the node rejected the Kerberos ticket (is the account in the node's Remote Management Users "
                    "group, and Kerberos allowed in WinRM's Auth settings?)"
                )
            token = context.step(reply)
        else:
            raise NegotiateAuthError(f"the Negotiate logon did not finish within {MAX_LEGS} legs")
    except _library_errors() as err:
        raise NegotiateAuthError(_describe(err, endpoint)) from None
    if not endpoint.allow_ntlm and context.negotiated_protocol != "kerberos":
        raise NegotiateAuthError(f"the logon used {context.negotiated_protocol}, not Kerberos, and allow_ntlm is off")
    return None if https else NegotiateEncryption(context)


def _server_token(response: requests.Response) -> bytes | None:
    """The Negotiate token of a WWW-Authenticate header, bounded; None when there is none."""
    for value in response.headers.get("WWW-Authenticate", "").split(","):
        scheme, _, data = value.strip().partition(" ")
        if scheme.lower() in ("negotiate", "kerberos") and data.strip():
            if len(data) > MAX_TOKEN_BYTES * 2:
                raise NegotiateAuthError("the node's Negotiate token is too large")
            try:
                return base64.b64decode(data.strip(), validate=True)
            except (binascii.Error, ValueError):
                raise NegotiateAuthError("the node's Negotiate token is not base64") from None
    return None


def _channel_bindings(session: requests.Session, url: str, timeout: float) -> Any:
    """tls-server-end-point bindings of the server certificate this keep-alive connection talks to."""
    from spnego.channel_bindings import GssChannelBindings

    response = session.post(url, data=b"", timeout=timeout, stream=True)
    try:
        connection = getattr(response.raw, "connection", None) or getattr(response.raw, "_connection", None)
        sock = getattr(connection, "sock", None)
        der = sock.getpeercert(binary_form=True) if sock is not None else None
        _ = response.content  # let the pool reuse the connection for the logon
    finally:
        response.close()
    if not der:
        raise NegotiateAuthError("cannot read the node's TLS certificate for channel binding")
    return GssChannelBindings(application_data=b"tls-server-end-point:" + certificate_hash(der))


def certificate_hash(der: bytes) -> bytes:
    """RFC 5929 section 4.1: the certificate's signature hash, SHA-256 in place of MD5 and SHA-1."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes

    certificate = x509.load_der_x509_certificate(der)
    algorithm = certificate.signature_hash_algorithm
    if algorithm is None or isinstance(algorithm, hashes.MD5 | hashes.SHA1):
        algorithm = hashes.SHA256()
    digest = hashes.Hash(algorithm)
    digest.update(der)
    return digest.finalize()


class NegotiateEncryption:
    """Seals requests and opens answers with the connection's security context (pywinrm's Encryption shape)."""

    protocol_string = PROTOCOL.encode()

    def __init__(self, context: Any) -> None:
        self._context = context

    def seal(self, message: bytes) -> bytes:
        """The multipart/encrypted body carrying `message`."""
        return seal(self._context, message)

    def prepare_encrypted_request(self, session: requests.Session, endpoint: str, message: bytes) -> Any:
        """A POST whose body is the sealed message."""
        body = seal(self._context, message)
        request = session.prepare_request(requests.Request("POST", endpoint, data=body))
        request.headers["Content-Length"] = str(len(body))
        request.headers["Content-Type"] = f'multipart/encrypted;protocol="{PROTOCOL}";boundary="Encrypted Boundary"'
        return request

    def parse_encrypted_response(self, response: requests.Response) -> bytes:
        """The SOAP message of a sealed answer."""
        if f'protocol="{PROTOCOL}"' not in response.headers.get("Content-Type", ""):
            raise EncryptionError(f"the node answered HTTP {response.status_code} without message encryption")
        return open_sealed(self._context, response.content)


def seal(context: Any, message: bytes) -> bytes:
    """A multipart/encrypted body carrying `message` (MS-WSMV 2.2.9.1.1)."""
    wrapped = context.wrap_winrm(message)
    return (
        BOUNDARY + b"\r\n"
        b"\tContent-Type: " + PROTOCOL.encode() + b"\r\n"
        b"\tOriginalContent: type=application/soap+xml;charset=UTF-8;Length=" + str(len(message)).encode() + b"\r\n"
        + BOUNDARY + b"\r\n"
        + _PAYLOAD_TYPE
        + struct.pack("<I", len(wrapped.header)) + wrapped.header + wrapped.data
        + BOUNDARY + b"--\r\n"
    )  # fmt: skip


def open_sealed(context: Any, body: bytes | bytearray) -> bytes:
    """The message inside a multipart/encrypted body; EncryptionError when it does not open or lengths differ.

    The parts are located in place, not split off: a Receive answer is hundreds of KiB, and NTLM
    decrypts straight from the answer's buffer (a Kerberos context gets its own copy).
    """
    import spnego.exceptions

    spans = _parts(body)
    if len(spans) != 2:
        raise EncryptionError("expected a metadata part and a payload part")
    metadata = bytes(body[spans[0][0] : spans[0][1]])
    match = _LENGTH.search(metadata)
    if match is None or PROTOCOL.encode() not in metadata:
        raise EncryptionError("metadata part lacks the protocol or the original length")
    start, end = spans[1]
    if body.endswith(_END, start, end):
        end -= len(_END)
    if not body.startswith(_PAYLOAD_TYPE, start, end) or end - start < len(_PAYLOAD_TYPE) + 4:
        raise EncryptionError("payload part lacks its content type")
    start += len(_PAYLOAD_TYPE)
    (header_length,) = struct.unpack_from("<I", body, start)
    start += 4
    if header_length > end - start:
        raise EncryptionError("header length exceeds the payload")
    header = bytes(body[start : start + header_length])
    with memoryview(body) as view:
        sealed: Any = view[start + header_length : end]
        if getattr(context, "negotiated_protocol", None) != "ntlm":
            sealed = bytes(sealed)  # GSSAPI wants bytes
        try:
            message = bytes(context.unwrap_winrm(header, sealed))
        except spnego.exceptions.SpnegoError as err:
            raise EncryptionError(f"cannot unseal: {' '.join(str(err).split())[:200]}") from None
        finally:
            if isinstance(sealed, memoryview):
                sealed.release()
    if len(message) != int(match.group(1)):
        raise EncryptionError("decrypted length differs from OriginalContent")
    return message


def _parts(body: bytes | bytearray) -> list[tuple[int, int]]:
    """Where the non-empty parts between boundary lines are (as `split` would cut them), at most 3 of them."""
    spans: list[tuple[int, int]] = []
    start = 0
    while len(spans) < 3:
        end = body.find(_SEPARATOR, start)
        stop = len(body) if end < 0 else end
        if stop > start:
            spans.append((start, stop))
        if end < 0:
            break
        start = end + len(_SEPARATOR)
    return spans
