"""LOGIN7 after the TLS handshake inside TDS, answered the way SQL Server refuses a login it does not know.

MS-TDS: with ENCRYPT_ON the client sends LOGIN7 (packet type 0x10) as TLS records straight on TCP
once the handshake is done. The simulated server has no logins, so it answers every LOGIN7 with a
tabular result holding an ERROR token (number 18456, state 1, class 14, "Login failed for user
'<name>'.") and a DONE token with DONE_ERROR, as SQL Server does for an unknown login or a wrong
password. Clients nobody here wrote (python-tds) then fail with that error, which proves the
pre-login, the TLS handshake and the encrypted channel worked.
"""

from __future__ import annotations

import socket
import ssl
import struct
from collections.abc import Callable

from collectors.tls.tds import TABULAR_RESULT, encode_packets

LOGIN7 = 0x10
HEADER = 8
EOM = 0x01
MAX_LOGIN = 128 * 1024
ERROR_TOKEN, DONE_TOKEN = 0xAA, 0xFD
DONE_ERROR = 0x0002
LOGIN_FAILED = 18456


def _us_varchar(text: str) -> bytes:
    return struct.pack("<H", len(text)) + text.encode("utf-16-le")


def _b_varchar(text: str) -> bytes:
    return struct.pack("<B", len(text)) + text.encode("utf-16-le")


def login_failed(user: str, server: str = "SQL1") -> bytes:
    """The tabular result SQL Server sends for a refused login (ERROR + DONE tokens, TDS 7.2+ layout)."""
    body = (
        struct.pack("<iBB", LOGIN_FAILED, 1, 14)
        + _us_varchar(f"Login failed for user '{user}'.")
        + _b_varchar(server)
        + _b_varchar("")
        + struct.pack("<i", 1)
    )
    error = struct.pack("<BH", ERROR_TOKEN, len(body)) + body
    done = struct.pack("<BHHQ", DONE_TOKEN, DONE_ERROR, 0, 0)
    return error + done


def login_user(payload: bytes) -> str:
    """The user name of a LOGIN7 payload (ibUserName/cchUserName at offset 40), or ''."""
    if len(payload) < 44:
        return ""
    offset, count = struct.unpack_from("<HH", payload, 40)
    raw = payload[offset : offset + 2 * count]
    return raw.decode("utf-16-le", "replace") if len(raw) == 2 * count else ""


def _decrypted(conn: socket.socket, tls: ssl.SSLObject, incoming: ssl.MemoryBIO) -> bytes:
    """Plaintext the client has sent so far (waits for at least one more TLS record)."""
    while True:
        try:
            return tls.read(65536)
        except ssl.SSLWantReadError:
            data = conn.recv(65536)
            if not data:
                return b""
            incoming.write(data)


def answer_login(
    conn: socket.socket,
    tls: ssl.SSLObject,
    incoming: ssl.MemoryBIO,
    outgoing: ssl.MemoryBIO,
    on_login: Callable[[str], None],
) -> bool:
    """Read LOGIN7 through the TLS session and refuse it; False when the client sent something else or left."""
    buffer = b""
    payload = b""
    conn.settimeout(10)
    try:
        while True:
            while len(buffer) < HEADER or len(buffer) < struct.unpack_from(">H", buffer, 2)[0]:
                chunk = _decrypted(conn, tls, incoming)
                if not chunk or len(buffer) + len(chunk) > MAX_LOGIN:
                    return False
                buffer += chunk
            kind, status, length = buffer[0], buffer[1], struct.unpack_from(">H", buffer, 2)[0]
            if kind != LOGIN7 or length < HEADER:
                return False
            payload += buffer[HEADER:length]
            buffer = buffer[length:]
            if status & EOM:
                break
        user = login_user(payload)
        on_login(user)
        tls.write(encode_packets(TABULAR_RESULT, login_failed(user)))
        conn.sendall(outgoing.read())
        return True
    except (OSError, ssl.SSLError):
        return False
