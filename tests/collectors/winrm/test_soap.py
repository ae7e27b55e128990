"""Reading WS-Management replies (collectors/winrm/soap.py): the Receive answer's streams and state."""

from __future__ import annotations

import base64

import pytest

from collectors.winrm import soap

REQUEST = soap.Request("uuid:5F1C2C7A-0000-4000-8000-000000000001", b"")
COMMAND = "C0FFEE00-0000-4000-8000-000000000002"


def receive_reply(streams: str, state: str = soap.STATE_DONE, exit_code: str = "0") -> bytes:
    """A ReceiveResponse as Windows writes it (namespaced attributes, xml:lang in the header)."""
    return (
        f'<s:Envelope xml:lang="en-US" xmlns:s="{soap.NS_SOAP}" xmlns:a="{soap.NS_ADDRESSING}" '
        f'xmlns:rsp="{soap.NS_SHELL}"><s:Header><a:RelatesTo>{REQUEST.message_id}</a:RelatesTo></s:Header>'
        f"<s:Body><rsp:ReceiveResponse>{streams}"
        f'<rsp:CommandState CommandId="{COMMAND}" State="{state}"><rsp:ExitCode>{exit_code}</rsp:ExitCode>'
        "</rsp:CommandState></rsp:ReceiveResponse></s:Body></s:Envelope>"
    ).encode()


def stream(name: str, text: str) -> str:
    return f'<rsp:Stream Name="{name}" CommandId="{COMMAND}">{text}</rsp:Stream>'


def test_streams_state_and_exit_code_are_read() -> None:
    big = bytes(range(256)) * 800  # a Receive answer's stream is hundreds of KiB
    streams = stream("stdout", base64.b64encode(big).decode()) + stream("stderr", base64.b64encode(b"oops").decode())
    root = soap.parse_reply(receive_reply(streams), REQUEST)
    assert root.get("{http://www.w3.org/XML/1998/namespace}lang") == "en-US"
    output = soap.output_of(root, COMMAND)
    assert (output.stdout, output.stderr, output.done, output.exit_code) == (big, b"oops", True, 0)


@pytest.mark.parametrize("text", ["QUJD!", "QUJ", "QUJD====", "QU JD", "QUJDé"])
def test_a_stream_that_is_not_strict_base64_is_refused(text: str) -> None:
    root = soap.parse_reply(receive_reply(stream("stdout", text)), REQUEST)
    with pytest.raises(soap.SoapError, match="not base64"):
        soap.output_of(root, COMMAND)


def test_a_doctype_is_refused_before_anything_is_read() -> None:
    reply = b"<!DOCTYPE s:Envelope>" + receive_reply("")
    with pytest.raises(soap.SoapError, match="DTDs and entities are not allowed"):
        soap.parse_reply(reply, REQUEST)


def test_an_undefined_entity_is_an_xml_error() -> None:
    with pytest.raises(soap.SoapError, match="not valid XML"):
        soap.parse_reply(receive_reply(stream("stdout", "&e;")), REQUEST)
