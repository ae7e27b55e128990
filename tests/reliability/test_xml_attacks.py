"""XML bombs and external references, refused by every XML parser of peer or operator data.

ConfigTemplate.xml and FederationMetadata.xml are refused with a CollectorError naming the file
or URL; a WinRM SOAP reply with a SoapError the session reports as the node's protocol error;
CLIXML on stderr is never expanded (its text is kept as an opaque warning). None of them reads
the referenced file or contacts the referenced server: a canary file and a listening socket see
nothing.
"""

from __future__ import annotations

import socket
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from collectors.adfs.metadata import parse_federation_metadata
from collectors.configtemplate import parse_config_template
from collectors.errors import CollectorError
from collectors.model import Generation
from collectors.winrm import soap
from collectors.winrm.output import read_stderr

CANARY = "certmon-canary-3f9d0c"
REQUEST = soap.Request("uuid:5F1C2C7A-0000-4000-8000-000000000001", b"")


def _laughs(root: str) -> str:
    levels = ['<!ENTITY lol0 "lol">']
    levels += [f'<!ENTITY lol{i} "{f"&lol{i - 1};" * 10}">' for i in range(1, 10)]
    return f'<?xml version="1.0"?><!DOCTYPE {root} [{"".join(levels)}]>'


def attacks(canary: Path, port: int) -> dict[str, Callable[[str, str], str]]:
    """Attack name -> document builder(root element, text slot), each a complete XML document."""
    url = f"http://127.0.0.1:{port}"
    return {
        "billion-laughs": lambda root, body: _laughs(root) + body.replace("SLOT", "&lol9;"),
        "quadratic-blowup": lambda root, body: (
            f'<?xml version="1.0"?><!DOCTYPE {root} [<!ENTITY a "{"x" * 50_000}">]>'
            + body.replace("SLOT", "&a;" * 50_000)
        ),
        "external-entity": lambda root, body: (
            f'<?xml version="1.0"?><!DOCTYPE {root} [<!ENTITY e SYSTEM "{canary.as_uri()}">]>'
            + body.replace("SLOT", "&e;")
        ),
        "external-entity-http": lambda root, body: (
            f'<?xml version="1.0"?><!DOCTYPE {root} [<!ENTITY e SYSTEM "{url}/e">]>' + body.replace("SLOT", "&e;")
        ),
        "external-dtd": lambda root, body: (
            f'<?xml version="1.0"?><!DOCTYPE {root} SYSTEM "{url}/evil.dtd">' + body.replace("SLOT", "1")
        ),
        "parameter-entity": lambda root, body: (
            f'<?xml version="1.0"?><!DOCTYPE {root} [<!ENTITY % r SYSTEM "{url}/p.dtd"> %r;]>'
            + body.replace("SLOT", "1")
        ),
    }


ATTACK_NAMES = sorted(attacks(Path("/x"), 9))
TEMPLATE = "<Config><Schema><Version>SLOT</Version></Schema></Config>"
METADATA = (
    '<EntityDescriptor xmlns="urn:oasis:names:tc:SAML:2.0:metadata" entityID="SLOT">'
    "<RoleDescriptor/></EntityDescriptor>"
)
ENVELOPE = (
    f'<s:Envelope xmlns:s="{soap.NS_SOAP}" xmlns:a="{soap.NS_ADDRESSING}">'
    f"<s:Header><a:RelatesTo>{REQUEST.message_id}</a:RelatesTo></s:Header><s:Body>SLOT</s:Body></s:Envelope>"
)


@pytest.fixture
def canary(tmp_path: Path) -> Path:
    """A file an external entity would read into the document."""
    path = tmp_path / "secret.txt"
    path.write_text(CANARY, encoding="utf-8")
    return path


@pytest.fixture
def listener() -> Iterator[socket.socket]:
    """A loopback socket an external DTD or entity would be fetched from; the test checks nobody came."""
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen(4)
    sock.setblocking(False)
    yield sock
    sock.close()


def _nobody_came(sock: socket.socket) -> None:
    with pytest.raises(BlockingIOError):
        sock.accept()


@pytest.mark.parametrize("attack", ATTACK_NAMES)
@pytest.mark.parametrize(
    ("kind", "body", "parse"),
    [
        ("configtemplate", TEMPLATE, lambda data, name: parse_config_template(data, name, Generation.NEW)),
        ("federationmetadata", METADATA, parse_federation_metadata),
    ],
    ids=["configtemplate", "federationmetadata"],
)
def test_documents_refuse_bombs_and_external_references(
    kind: str, body: str, parse: Callable[[bytes, str], Any], attack: str, canary: Path, listener: socket.socket
) -> None:
    name = f"\\\\fileserver\\agent\\{kind}.xml"
    document = attacks(canary, listener.getsockname()[1])[attack]("Config", body)
    with pytest.raises(CollectorError) as caught:
        parse(document.encode(), name)
    assert caught.value.source == name
    assert caught.value.reason == "parse_error"
    assert "DTDs and entities are not allowed" in caught.value.message
    assert CANARY not in str(caught.value)
    _nobody_came(listener)


@pytest.mark.parametrize("attack", ATTACK_NAMES)
def test_winrm_replies_refuse_bombs_and_external_references(attack: str, canary: Path, listener: socket.socket) -> None:
    document = attacks(canary, listener.getsockname()[1])[attack]("s:Envelope", ENVELOPE)
    with pytest.raises(soap.SoapError, match="not valid XML") as caught:
        soap.parse_reply(document.encode(), REQUEST)
    assert CANARY not in str(caught.value)
    _nobody_came(listener)


def test_clixml_entities_are_not_expanded(canary: Path) -> None:
    # CLIXML cannot carry a DTD (it starts at <Objs>); an entity reference is undefined, kept as text.
    stderr = f'#< CLIXML\r\n<Objs Version="1.1.0.1"><S S="Error">&lol9; &e; {canary.as_uri()}</S></Objs>'
    text = read_stderr(stderr.encode())
    assert CANARY not in " ".join(text.errors)
    assert all(len(message) < 300 for message in text.errors)


@pytest.mark.parametrize("encoding", ["x-no-such-codec", "shift_jis", "utf-32"])
def test_xml_in_an_unreadable_encoding_is_a_parse_error(encoding: str) -> None:
    # Regression: expat's LookupError/ValueError escaped parse_xml and parse_reply.
    declaration = f'<?xml version="1.0" encoding="{encoding}"?>'
    with pytest.raises(CollectorError, match="invalid XML") as caught:
        parse_config_template((declaration + TEMPLATE.replace("SLOT", "1")).encode(), "ct.xml", Generation.NEW)
    assert caught.value.source == "ct.xml"
    with pytest.raises(soap.SoapError, match="not valid XML"):
        soap.parse_reply((declaration + ENVELOPE.replace("SLOT", "")).encode(), REQUEST)
