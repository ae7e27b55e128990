"""Authentication and message encryption as a Windows WinRM listener does them.

NTLM goes through pyspnego's acceptor, which validates against an NTLM user file (lines of
`DOMAIN:user:password`) named by the NTLM_USER_FILE environment variable. Each simulated node has
its own user file, like each Windows server has its own accounts, so the variable is set under a
lock around every acceptor step. Kerberos (raw or inside SPNEGO) goes through the same acceptor,
which then uses GSSAPI with the node's keytab (KRB5_KTNAME, set under the same lock when the node
has a keytab), as a domain member decrypts service tickets with its own key.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import os
import re
import struct
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import spnego
import spnego.exceptions
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from spnego.channel_bindings import GssChannelBindings

_USER_FILE_LOCK = threading.Lock()
ENCRYPTED_PROTOCOL = "application/HTTP-SPNEGO-session-encrypted"
BOUNDARY = b"--Encrypted Boundary"
_LENGTH = re.compile(rb"Length=(\d+)")


class AuthError(Exception):
    """The client's credentials or token were rejected."""


class DecryptError(Exception):
    """An encrypted body could not be opened with the connection's security context."""


@dataclass(frozen=True)
class Account:
    """A local account of the simulated node."""

    domain: str
    user: str
    password: str


def read_user_file(path: Path) -> list[Account]:
    """Accounts from an NTLM user file (`DOMAIN:user:password` per line)."""
    accounts = []
    for line in path.read_text(encoding="utf-8").splitlines():
        parts = line.split(":", 2)
        if len(parts) == 3 and parts[1]:
            accounts.append(Account(parts[0], parts[1], parts[2]))
    return accounts


def write_user_file(path: Path, accounts: list[Account]) -> None:
    """Write an NTLM user file."""
    path.write_text("".join(f"{a.domain}:{a.user}:{a.password}\n" for a in accounts), encoding="utf-8")


def end_point_hash(der: bytes) -> bytes:
    """RFC 5929 tls-server-end-point: the certificate hashed with its signature hash (SHA-256 for MD5/SHA-1)."""
    algorithm = x509.load_der_x509_certificate(der).signature_hash_algorithm
    if algorithm is None or algorithm.name in ("md5", "sha1"):
        algorithm = hashes.SHA256()
    digest = hashes.Hash(algorithm)
    digest.update(der)
    return digest.finalize()


@contextlib.contextmanager
def _user_file(path: Path, keytab: Path | None = None) -> Iterator[None]:
    # The variables are only ever overwritten, never removed: other threads of the process may be
    # iterating os.environ, and a change of its size would break them.
    with _USER_FILE_LOCK:
        os.environ["NTLM_USER_FILE"] = str(path)
        if keytab is not None:
            os.environ["KRB5_KTNAME"] = f"FILE:{keytab}"
        yield


class NtlmLogon:
    """One NTLM or Kerberos (raw or SPNEGO-wrapped) logon on one connection, then its sealing context."""

    def __init__(self, user_file: Path, keytab: Path | None = None, server_certificate: bytes | None = None) -> None:
        self._user_file = user_file
        self._keytab = keytab
        # Over HTTPS the logon is bound to the listener's certificate (CbtHardeningLevel Strict).
        bindings = None
        if server_certificate is not None:
            application_data = b"tls-server-end-point:" + end_point_hash(server_certificate)
            bindings = GssChannelBindings(application_data=application_data)
        with _user_file(user_file, keytab):
            self._context = spnego.server(service="http", protocol="negotiate", channel_bindings=bindings)

    @property
    def complete(self) -> bool:
        """True once the client proved its password."""
        return bool(self._context.complete)

    @property
    def user(self) -> str:
        """DOMAIN\\user of the logged-on client."""
        return str(self._context.client_principal or "")

    def step(self, token: bytes) -> bytes | None:
        """Feed a client token; returns the reply token (the challenge) or None when done."""
        try:
            with _user_file(self._user_file, self._keytab):
                return self._context.step(token)
        except spnego.exceptions.SpnegoError as err:
            raise AuthError(str(err)) from err
        except AttributeError as err:
            # pyspnego's GSSAPI acceptor reads the flags of a context that failed to establish (a ticket
            # for a key the node lacks); a Windows node answers such a logon with 401, so do we.
            raise AuthError(f"Kerberos acceptor failed: {err}") from err

    def seal(self, message: bytes) -> bytes:
        """A multipart/encrypted body carrying `message`, as MS-WSMV 2.2.9.1.1 lays it out."""
        # NTLM: the 16-byte signature, then the sealed message; Kerberos: the wrap token's header
        # (IOV wrap, SECBUFFER_TOKEN), then the sealed message.
        wrapped = self._context.wrap_winrm(message)
        signature, sealed = wrapped.header, wrapped.data
        return (
            BOUNDARY + b"\r\n"
            b"\tContent-Type: " + ENCRYPTED_PROTOCOL.encode() + b"\r\n"
            b"\tOriginalContent: type=application/soap+xml;charset=UTF-8;Length=" + str(len(message)).encode() + b"\r\n"
            + BOUNDARY + b"\r\n"
            b"\tContent-Type: application/octet-stream\r\n"
            + struct.pack("<I", len(signature)) + signature + sealed
            + BOUNDARY + b"--\r\n"
        )  # fmt: skip

    def open(self, body: bytes) -> bytes:
        """The SOAP message inside a multipart/encrypted body; DecryptError when it does not open."""
        parts = [p for p in body.split(BOUNDARY + b"\r\n") if p]
        if len(parts) != 2:
            raise DecryptError("expected a metadata part and a payload part")
        match = _LENGTH.search(parts[0])
        if match is None or ENCRYPTED_PROTOCOL.encode() not in parts[0]:
            raise DecryptError("metadata part lacks the protocol or the original length")
        payload = parts[1]
        if payload.endswith(BOUNDARY + b"--\r\n"):
            payload = payload[: -len(BOUNDARY + b"--\r\n")]
        prefix = b"\tContent-Type: application/octet-stream\r\n"
        if not payload.startswith(prefix) or len(payload) < len(prefix) + 4:
            raise DecryptError("payload part lacks its content type")
        payload = payload[len(prefix) :]
        (signature_length,) = struct.unpack("<I", payload[:4])
        signature = payload[4 : 4 + signature_length]
        sealed = payload[4 + signature_length :]
        try:
            message = self._context.unwrap_winrm(signature, sealed)
        except spnego.exceptions.SpnegoError as err:
            raise DecryptError(f"cannot unseal: {err}") from err
        if len(message) != int(match.group(1)):
            raise DecryptError("decrypted length differs from OriginalContent")
        return bytes(message)


def parse_authorization(value: str) -> tuple[str, bytes] | None:
    """(scheme, token) of an Authorization header; None when absent or not base64."""
    scheme, _, data = value.strip().partition(" ")
    if not scheme:
        return None
    try:
        return scheme.lower(), base64.b64decode(data.strip(), validate=True)
    except (binascii.Error, ValueError):
        return None


def basic_account(token: bytes, accounts: list[Account]) -> Account:
    """The account whose user name and password a Basic token carries; AuthError otherwise."""
    user, sep, password = token.decode("utf-8", "replace").partition(":")
    if not sep:
        raise AuthError("malformed Basic credentials")
    domain, _, name = user.rpartition("\\")
    for account in accounts:
        same_user = account.user.lower() == name.lower()
        same_domain = not domain or domain.lower() in (account.domain.lower(), ".")
        if same_user and same_domain and account.password == password:
            return account
    raise AuthError("unknown user name or bad password")
