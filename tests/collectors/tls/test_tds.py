"""SQL Server's certificate through TDS: PRELOGIN framing against the spec, probes against the TDS simulator."""

from __future__ import annotations

import socket
from collections.abc import Iterator

import pytest

from collectors.base import Deadline
from collectors.errors import CollectorError, Reason
from collectors.tls.client import client_context
from collectors.tls.tds import (
    ENCRYPT_NOT_SUP,
    ENCRYPTION,
    PRELOGIN,
    TABULAR_RESULT,
    VERSION,
    MessageReader,
    TdsProtocolError,
    build_prelogin,
    encode_packets,
    parse_answer,
    parse_prelogin,
    probe_tds7,
    probe_tds8,
)
from collectors.transport import SocketChannel, connect
from simulator.lab import Lab
from simulator.tds import TdsServer
from simulator.tls import TlsEndpointServer

# MS-TDS 4.1, "Pre-Login Request": the packet a client sends, byte for byte.
SPEC_PRELOGIN = bytes.fromhex(
    "12 01 00 2F 00 00 01 00 00 00 1A 00 06 01 00 20"
    "00 01 02 00 21 00 01 03 00 22 00 04 04 00 26 00"
    "01 FF 09 00 00 00 00 00 01 00 B8 0D 00 00 01"
)


def test_prelogin_framing_matches_the_specification_example() -> None:
    payload = SPEC_PRELOGIN[8:]
    options = parse_prelogin(payload)
    assert options == {
        0: bytes.fromhex("090000000000"),
        1: b"\x01",
        2: b"\x00",
        3: bytes.fromhex("B80D0000"),
        4: b"\x01",
    }
    rebuilt = build_prelogin(list(options.items()))
    assert rebuilt == payload
    assert encode_packets(PRELOGIN, rebuilt) == SPEC_PRELOGIN


def test_a_server_answer_gives_version_and_encryption() -> None:
    answer = parse_answer(build_prelogin([(VERSION, bytes([15, 0, 0x07, 0xD0, 0, 5])), (ENCRYPTION, b"\x03")]))
    assert (answer.version, answer.encryption_name) == ("15.0.2000", "required")


@pytest.mark.parametrize(
    ("payload", "text"),
    [
        (b"\x00\x00\x06\x00", "truncated"),
        (b"\x00\x00\x05\x00\x00", "no terminator"),
        (b"\x00\x00\x40\x00\x06\xff", "past the end"),
    ],
)
def test_malformed_option_tables_are_protocol_errors(payload: bytes, text: str) -> None:
    with pytest.raises(TdsProtocolError, match=text):
        parse_prelogin(payload)
    with pytest.raises(TdsProtocolError):
        parse_answer(build_prelogin([(VERSION, b"\x0f\x00\x07\xd0\x00\x00")]))


def test_long_messages_are_split_and_reassembled() -> None:
    payload = bytes(range(256)) * 40  # 10240 bytes: three packets of at most 4096
    wire = encode_packets(PRELOGIN, payload)
    assert wire.count(b"\x12\x00\x10\x00") == 2 and len(wire) == len(payload) + 3 * 8
    left, right = socket.socketpair()
    with left, right:
        left.sendall(wire)
        reader = MessageReader(SocketChannel(right, Deadline.after(5), "pair"), "pair", "test")
        assert reader.message((PRELOGIN,)) == payload
        left.sendall(encode_packets(TABULAR_RESULT, b"abc"))
        with pytest.raises(CollectorError, match="expected packet type 0x12, got 0x04"):
            reader.message((PRELOGIN,))


@pytest.fixture
def sql(lab: Lab) -> Iterator[TdsServer]:
    with TdsServer(lab.cert("SQLCluster", "new").issued, (lab.ca,)) as server:
        yield server


def _tds7(port: int, name: str = "sql1.contoso.lab"):  # type: ignore[no-untyped-def]
    deadline = Deadline.after(5)
    sock = connect("127.0.0.1", port, deadline, f"127.0.0.1:{port}")
    with sock:
        return probe_tds7(sock, name, client_context(), deadline, f"127.0.0.1:{port}")


def _tds8(port: int, name: str = "sql1.contoso.lab"):  # type: ignore[no-untyped-def]
    deadline = Deadline.after(5)
    sock = connect("127.0.0.1", port, deadline, f"127.0.0.1:{port}")
    with sock:
        return probe_tds8(sock, name, client_context(("tds/8.0",)), deadline, f"127.0.0.1:{port}")


def test_tds7_reads_the_certificate_inside_prelogin_packets(lab: Lab, sql: TdsServer) -> None:
    result = _tds7(sql.port)
    assert result.handshake.completed
    assert result.handshake.version == "TLS 1.2"  # SQL Server's TDS 7.x TLS
    assert result.server_version == "16.0.1000" and result.encryption == "on"
    leaf_der = result.handshake.chain[0]
    assert leaf_der == lab.cert("SQLCluster", "new").issued.der
    sent = sql.prelogins[-1]
    assert next(iter(sent)) == VERSION, "the client version must be the first option"
    assert sent[ENCRYPTION] == b"\x01"


def test_tds8_is_tls_first_with_alpn_then_prelogin(lab: Lab, sql: TdsServer) -> None:
    result = _tds8(sql.port)
    assert result.handshake.completed and result.handshake.alpn == "tds/8.0"
    assert result.handshake.version == "TLS 1.3"
    assert result.server_version == "16.0.1000" and result.encryption == "strict"
    assert result.handshake.chain[0] == lab.cert("SQLCluster", "new").issued.der
    assert sql.prelogins, "the PRELOGIN travelled inside TLS"


def test_the_wrong_mode_names_the_other_one(lab: Lab) -> None:
    cert = lab.cert("SQLCluster", "new").issued
    with TdsServer(cert, accept=("tds8",)) as strict_only, pytest.raises(CollectorError) as err:
        _tds7(strict_only.port)
    assert err.value.reason is Reason.PROTOCOL_ERROR and "needs kind tds8" in err.value.message
    with TdsServer(cert, accept=("tds7",)) as legacy, pytest.raises(CollectorError) as err:
        _tds8(legacy.port)
    assert err.value.reason is Reason.TLS_ERROR and "needs kind tds" in err.value.message


def test_a_server_without_encryption_has_no_certificate(lab: Lab) -> None:
    with (
        TdsServer(lab.cert("SQLCluster", "new").issued, encryption=ENCRYPT_NOT_SUP) as server,
        pytest.raises(CollectorError) as err,
    ):
        _tds7(server.port)
    assert err.value.reason is Reason.TLS_ERROR
    assert "does not support encryption" in err.value.message and "16.0.1000" in err.value.message


def test_something_else_on_the_port_is_a_protocol_error(lab: Lab) -> None:
    with (
        TdsServer(lab.cert("SQLCluster", "new").issued, garbage=True) as server,
        pytest.raises(CollectorError) as err,
    ):
        _tds7(server.port)
    assert err.value.reason is Reason.PROTOCOL_ERROR and "not a TDS server" in err.value.message


def _http(tls: socket.socket) -> None:
    tls.recv(4096)
    tls.sendall(b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n\r\n")


def test_a_tls_server_that_is_not_sql_server_keeps_its_certificate_under_tds8(lab: Lab) -> None:
    # TLS succeeds, an HTTPS server answers the PRELOGIN with HTTP: the certificate is still reported.
    web = lab.cert("SSRSHTTPS", "new").issued
    with TlsEndpointServer(web, (lab.ca,), responder=_http) as server:
        result = _tds8(server.port, "bi1.contoso.lab")
    assert result.handshake.chain[0] == web.der
    assert not result.handshake.completed
    error = result.handshake.error
    assert error is not None and error.reason is Reason.PROTOCOL_ERROR
    assert "not a TDS server" in error.message and "got 0x48" in error.message
