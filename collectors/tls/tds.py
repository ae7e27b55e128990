"""SQL Server's TLS certificate through TDS: the PRELOGIN exchange (MS-TDS 2.2.6.5).

TDS 7.x: a cleartext PRELOGIN negotiates encryption, then the TLS handshake records travel as the
payload of PRELOGIN (0x12) packets. TDS 8 (strict encryption): TLS comes first, with ALPN "tds/8.0",
and PRELOGIN follows inside it. The probe stops once the certificate is known; it never logs in.
"""

from __future__ import annotations

import socket
import struct
from dataclasses import dataclass, replace

from OpenSSL import SSL

from collectors.base import Deadline
from collectors.errors import CollectorError, Reason
from collectors.tls.client import Handshake, SocketTlsClient, TlsClient
from collectors.transport import Channel, SocketChannel

PRELOGIN = 0x12
TABULAR_RESULT = 0x04
STATUS_EOM = 0x01
HEADER = struct.Struct(">BBHHBB")
PACKET_SIZE = 4096
MAX_MESSAGE = 1024 * 1024
ALPN_TDS8 = "tds/8.0"

# PRELOGIN option tokens
VERSION, ENCRYPTION, INSTOPT, THREADID, MARS, TRACEID, FEDAUTHREQUIRED, NONCEOPT = range(8)
TERMINATOR = 0xFF

ENCRYPT_OFF, ENCRYPT_ON, ENCRYPT_NOT_SUP, ENCRYPT_REQ = 0x00, 0x01, 0x02, 0x03
ENCRYPT_CLIENT_CERT = 0x80
ENCRYPTION_NAMES = {ENCRYPT_OFF: "off", ENCRYPT_ON: "on", ENCRYPT_NOT_SUP: "not supported", ENCRYPT_REQ: "required"}

# The version certmon announces as a client (UL_VERSION, US_SUBBUILD).
CLIENT_VERSION = bytes([0, 1, 0, 0, 0, 0])


class TdsProtocolError(ValueError):
    """Bytes that are not the TDS this probe expects."""


def encode_packets(packet_type: int, payload: bytes, size: int = PACKET_SIZE) -> bytes:
    """One TDS message as packets of at most `size` bytes, the last marked end-of-message."""
    room = size - HEADER.size
    chunks = [payload[i : i + room] for i in range(0, len(payload), room)] or [b""]
    out = bytearray()
    for index, chunk in enumerate(chunks):
        status = STATUS_EOM if index == len(chunks) - 1 else 0
        out += HEADER.pack(packet_type, status, HEADER.size + len(chunk), 0, (index + 1) % 256, 0)
        out += chunk
    return bytes(out)


def build_prelogin(options: list[tuple[int, bytes]]) -> bytes:
    """A PRELOGIN payload: the option table, the terminator, then each option's data."""
    table_size = 5 * len(options) + 1
    table, data = bytearray(), bytearray()
    for token, value in options:
        table += struct.pack(">BHH", token, table_size + len(data), len(value))
        data += value
    return bytes(table) + bytes([TERMINATOR]) + bytes(data)


def parse_prelogin(payload: bytes) -> dict[int, bytes]:
    """Option token -> data of a PRELOGIN payload; TdsProtocolError when malformed."""
    options: dict[int, bytes] = {}
    position = 0
    while True:
        if position >= len(payload):
            raise TdsProtocolError("PRELOGIN option table has no terminator")
        token = payload[position]
        if token == TERMINATOR:
            break
        if position + 5 > len(payload):
            raise TdsProtocolError("PRELOGIN option table is truncated")
        _, offset, length = struct.unpack_from(">BHH", payload, position)
        if offset + length > len(payload):
            raise TdsProtocolError(f"PRELOGIN option {token:#04x} points past the end of the message")
        options[token] = payload[offset : offset + length]
        position += 5
    return options


def client_prelogin(encryption: int = ENCRYPT_ON) -> bytes:
    """The PRELOGIN a probe sends: version first (servers require it), encryption on, default instance."""
    return build_prelogin(
        [
            (VERSION, CLIENT_VERSION),
            (ENCRYPTION, bytes([encryption])),
            (INSTOPT, b"\x00"),
            (THREADID, b"\x00\x00\x00\x00"),
            (MARS, b"\x00"),
        ]
    )


@dataclass(frozen=True, slots=True)
class PreloginAnswer:
    """What the server said in its PRELOGIN response."""

    version: str
    encryption: int

    @property
    def encryption_name(self) -> str:
        """The encryption option in words."""
        return ENCRYPTION_NAMES.get(self.encryption & 0x7F, f"{self.encryption:#04x}")


def parse_answer(payload: bytes) -> PreloginAnswer:
    """The server's PRELOGIN response; TdsProtocolError when it lacks VERSION or ENCRYPTION."""
    options = parse_prelogin(payload)
    version, encryption = options.get(VERSION), options.get(ENCRYPTION)
    if version is None or len(version) < 4 or not encryption:
        raise TdsProtocolError("PRELOGIN response lacks the VERSION or ENCRYPTION option")
    build = int.from_bytes(version[2:4], "big")
    return PreloginAnswer(f"{version[0]}.{version[1]}.{build}", encryption[0])


class MessageReader:
    """Reads whole TDS messages (packets up to end-of-message) from a channel."""

    def __init__(self, channel: Channel, where: str, stage: str) -> None:
        self.channel = channel
        self.where = where
        self.stage = stage
        self._buffer = bytearray()

    def _exact(self, count: int) -> bytes:
        while len(self._buffer) < count:
            chunk = self.channel.receive()
            if not chunk:
                break
            self._buffer += chunk
        data = bytes(self._buffer[:count])
        del self._buffer[:count]
        return data

    def _fail(self, text: str) -> CollectorError:
        return CollectorError(self.where, Reason.PROTOCOL_ERROR, text)

    def message(self, accepted: tuple[int, ...]) -> bytes:
        """The payload of the next message; b'' when the server closed the connection first."""
        payload = bytearray()
        while True:
            header = self._exact(HEADER.size)
            if not header and not payload:
                return b""
            if len(header) < HEADER.size:
                raise self._fail(f"connection closed inside a TDS packet during the {self.stage}")
            kind, status, length, _, _, _ = HEADER.unpack(header)
            if kind not in accepted:
                expected = " or ".join(f"{a:#04x}" for a in accepted)
                raise self._fail(f"not a TDS server: expected packet type {expected}, got {kind:#04x}")
            if length < HEADER.size or len(payload) + length > MAX_MESSAGE:
                raise self._fail(f"TDS packet announces an invalid length {length}")
            body = self._exact(length - HEADER.size)
            if len(body) < length - HEADER.size:
                raise self._fail(f"connection closed inside a TDS packet during the {self.stage}")
            payload += body
            if status & STATUS_EOM:
                return bytes(payload)


def _prelogin(channel: Channel, where: str, stage: str) -> PreloginAnswer:
    channel.send(encode_packets(PRELOGIN, client_prelogin()))
    # Servers before TDS 7.2 answered with 0x04 like today's, a few gateways with 0x12.
    payload = MessageReader(channel, where, stage).message((TABULAR_RESULT, PRELOGIN))
    if not payload:
        raise CollectorError(
            where, Reason.PROTOCOL_ERROR, f"the server closed the connection without a PRELOGIN response ({stage})"
        )
    try:
        return parse_answer(payload)
    except TdsProtocolError as err:
        raise CollectorError(where, Reason.PROTOCOL_ERROR, str(err)) from err


class PreloginChannel:
    """TLS records of a TDS 7.x handshake, wrapped in PRELOGIN packets."""

    def __init__(self, channel: Channel, where: str) -> None:
        self.channel = channel
        self.reader = MessageReader(channel, where, "TLS handshake inside TDS")

    def send(self, data: bytes) -> None:
        """Wrap TLS bytes in PRELOGIN packets."""
        self.channel.send(encode_packets(PRELOGIN, data))

    def receive(self) -> bytes:
        """The TLS bytes of the server's next PRELOGIN message."""
        return self.reader.message((PRELOGIN, TABULAR_RESULT))


@dataclass(frozen=True, slots=True)
class TdsResult:
    """A TDS probe: the TLS handshake and what the server said about itself."""

    handshake: Handshake
    server_version: str
    encryption: str


def probe_tds7(
    sock: socket.socket, server_name: str | None, context: SSL.Context, deadline: Deadline, where: str
) -> TdsResult:
    """PRELOGIN in clear, then the TLS handshake inside PRELOGIN packets (TDS 7.x)."""
    channel = SocketChannel(sock, deadline, where, "TDS pre-login")
    try:
        answer = _prelogin(channel, where, "TDS pre-login")
    except CollectorError as err:
        if err.reason is Reason.PROTOCOL_ERROR and ("closed" in err.message or "reset" in err.message):
            raise CollectorError(
                where, err.reason, f"{err.message} (a SQL Server that forces strict encryption needs kind tds8)"
            ) from err
        raise
    if answer.encryption & 0x7F == ENCRYPT_NOT_SUP:
        raise CollectorError(
            where,
            Reason.TLS_ERROR,
            f"SQL Server {answer.version} does not support encryption "
            "(PRELOGIN ENCRYPT_NOT_SUP): no certificate to read",
        )
    channel.stage = "TLS handshake inside TDS"
    # After the handshake a client would send LOGIN7 over TLS straight on TCP; the probe stops here.
    handshake = TlsClient(context, PreloginChannel(channel, where), server_name, where).handshake()
    return TdsResult(handshake, answer.version, answer.encryption_name)


def probe_tds8(
    sock: socket.socket, server_name: str | None, context: SSL.Context, deadline: Deadline, where: str
) -> TdsResult:
    """TLS first with ALPN tds/8.0, then PRELOGIN inside TLS to confirm a TDS 8 server answers."""
    client = SocketTlsClient(context, sock, deadline, server_name, where)
    try:
        handshake = client.handshake()
    except CollectorError as err:
        if "closed" in err.message or "reset" in err.message:
            raise CollectorError(where, err.reason, f"{err.message} (a SQL Server before 2022 needs kind tds)") from err
        raise
    if not handshake.completed:
        return TdsResult(handshake, "", "strict")
    client.stage = "TDS pre-login inside TLS"
    try:
        answer = _prelogin(client, where, "TDS pre-login inside TLS")
    except CollectorError as err:
        return TdsResult(replace(handshake, error=err), "", "strict")
    client.close()
    return TdsResult(handshake, answer.version, "strict")
