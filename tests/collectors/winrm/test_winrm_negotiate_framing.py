"""SPNEGO message encryption framing (MS-WSMV 2.2.9.1.1) with a real pyspnego NTLM context pair.

Tampered, truncated or mislabelled bodies are refused with EncryptionError, never returned as a message.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import spnego

from collectors.winrm.negotiate import BOUNDARY, EncryptionError, open_sealed, seal

MESSAGE = b'<s:Envelope xmlns:s="http://www.w3.org/2003/05/soap-envelope"><s:Body/></s:Envelope>'


@pytest.fixture
def contexts(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> tuple[Any, Any]:
    """An established NTLM client/server pair (pyspnego's acceptor with a user file)."""
    users = tmp_path / "users.txt"
    users.write_text("LAB:certmon:Pa55-word\n", encoding="utf-8")
    monkeypatch.setenv("NTLM_USER_FILE", str(users))
    client = spnego.client("LAB\\certmon", "Pa55-word", hostname="node", protocol="ntlm")
    server = spnego.server(protocol="ntlm")
    token = client.step()
    while not (client.complete and server.complete):
        token = server.step(token)
        if token is not None:
            token = client.step(token)
    return client, server


def test_sealed_message_opens_on_the_other_side(contexts: tuple[Any, Any]) -> None:
    client, server = contexts
    body = seal(client, MESSAGE)
    assert MESSAGE not in body and body.endswith(BOUNDARY + b"--\r\n")
    assert f"Length={len(MESSAGE)}".encode() in body
    assert open_sealed(server, body) == MESSAGE
    assert open_sealed(client, seal(server, MESSAGE)) == MESSAGE


@pytest.mark.parametrize(
    ("damage", "message"),
    [
        (lambda b: b[:-30], "cannot unseal"),  # the sealed data cut short
        (lambda b: b.replace(b"Length=", b"Length=1"), "length differs"),
        (lambda b: b.replace(b"HTTP-SPNEGO-session-encrypted", b"HTTP-CredSSP-session-encrypted"), "protocol"),
        (lambda b: b.replace(b"application/octet-stream", b"text/plain"), "content type"),
        (lambda b: b.split(BOUNDARY + b"\r\n")[1], "metadata part and a payload part"),
        (lambda b: b[:-40] + bytes([b[-40] ^ 1]) + b[-39:], "cannot unseal"),
    ],
)
def test_damaged_bodies_are_refused(contexts: tuple[Any, Any], damage: Any, message: str) -> None:
    client, server = contexts
    with pytest.raises(EncryptionError, match=message):
        open_sealed(server, damage(seal(client, MESSAGE)))


def test_header_length_beyond_the_payload_is_refused(contexts: tuple[Any, Any]) -> None:
    client, server = contexts
    body = seal(client, MESSAGE)
    marker = b"application/octet-stream\r\n"
    at = body.index(marker) + len(marker)
    forged = body[:at] + (10**6).to_bytes(4, "little") + body[at + 4 :]
    with pytest.raises(EncryptionError, match="header length exceeds"):
        open_sealed(server, forged)


def test_a_sealed_answer_that_does_not_open_is_a_protocol_error() -> None:
    from collectors.errors import Reason
    from collectors.winrm.transport import classify

    reason, message = classify(EncryptionError("cannot unseal: Invalid Message integrity Check (MIC) detected"))
    assert reason == Reason.PROTOCOL_ERROR and "sealed answer was refused" in message
