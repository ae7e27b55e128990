"""Property tests: every parser of operator or peer data, fed random and mutated input, either parses or
raises a CollectorError (CertificateError) that names the input; never another exception.

Inputs are random bytes, valid documents with bytes flipped, cut or inserted, and (for the JSON
formats) valid documents with one subtree replaced by any JSON value. XML bombs and external
entities are refused before any expansion.
"""

from __future__ import annotations

import base64
import json
import os
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from collectors.adfsmeta import parse_federation_metadata, parse_jwks, parse_openid_configuration
from collectors.agentconfig import parse_agent_config
from collectors.certfiles import load_certificates
from collectors.certificate import certificate_from_der
from collectors.clusterconfig import parse_cluster_config
from collectors.configtemplate import parse_config_template
from collectors.credentials import parse_credentials, parse_value
from collectors.errors import CollectorError
from collectors.files import parse_json
from collectors.model import Generation
from collectors.winrm.output import interpret, parse_inventory
from simulator.adfs import federation_metadata, jwks
from simulator.lab import Lab, build_lab
from simulator.pki import days, make_certificate, pfx_bytes

NOW = datetime(2026, 11, 27, 12, 0, 0, tzinfo=UTC)
SOURCE = "fuzzed-input"
PROPERTY = settings(
    max_examples=int(os.environ.get("CERTMON_FUZZ_EXAMPLES", "150")),
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)


def _lab(tmp_path_factory: pytest.TempPathFactory) -> Lab:
    return build_lab(tmp_path_factory.mktemp("bad-input") / "lab", now=NOW, port=0)


SAMPLES: dict[str, bytes] = {}


@pytest.fixture(scope="module", autouse=True)
def samples(tmp_path_factory: pytest.TempPathFactory) -> None:
    """One valid document of every format, in SAMPLES (a fixture argument would fill hypothesis's reports)."""
    SAMPLES.update(_samples(_lab(tmp_path_factory)))


def _samples(lab: Lab) -> dict[str, bytes]:
    cert = lab.cert("ServiceFabric", "new").issued
    signing = [lab.service_certs["ADFSTokenSigning-new"]]
    inventory = {
        "v": 1,
        "stores": [
            {
                "s": "LocalMachine\\My",
                "c": [{"d": base64.b64encode(cert.der).decode(), "h": True, "k": "capi", "p": "Microsoft RSA"}],
            }
        ],
        "sql": [{"i": "MSSQLSERVER", "t": cert.thumbprint}],
        "n": 1,
    }
    return {
        "der": cert.der,
        "pem": cert.pem,
        "pfx": pfx_bytes(cert, b"pw"),
        "configtemplate": (lab.infrastructure / "ConfigTemplate.xml").read_bytes(),
        "clusterconfig": lab.cluster_config.read_bytes(),
        "localagent": lab.localagent_config.read_bytes(),
        "credentials": lab.credentials_json.read_bytes(),
        "metadata": federation_metadata("adfs.contoso.lab", signing, signing),
        "jwks": json.dumps(jwks(signing)).encode(),
        "openid": json.dumps({"issuer": "https://adfs/adfs", "jwks_uri": "https://adfs/adfs/discovery/keys"}).encode(),
        "inventory": json.dumps(inventory, separators=(",", ":")).encode() + b"\r\n",
    }


def _ok_or_collector_error(parse: Callable[[bytes], Any], data: bytes) -> None:
    try:
        parse(data)
    except CollectorError as err:
        assert err.message, "an error without a message"
        assert str(err).startswith(err.source)


PARSERS: dict[str, Callable[[bytes], Any]] = {
    "der": lambda data: certificate_from_der(data, SOURCE),
    "pem": lambda data: load_certificates(data, SOURCE),
    "pfx": lambda data: load_certificates(data, SOURCE, b"pw"),
    "configtemplate": lambda data: parse_config_template(data, SOURCE, Generation.NEW),
    "clusterconfig": lambda data: parse_cluster_config(parse_json(data, SOURCE), SOURCE),
    "localagent": lambda data: parse_agent_config(parse_json(data, SOURCE), SOURCE),
    "credentials": lambda data: parse_credentials(parse_json(data, SOURCE), SOURCE),
    "metadata": lambda data: parse_federation_metadata(data, SOURCE),
    "jwks": lambda data: parse_jwks(data, SOURCE),
    "openid": lambda data: parse_openid_configuration(data, SOURCE),
    "inventory": lambda data: parse_inventory("AOS1", data),
}
JSON_FORMATS = ("clusterconfig", "localagent", "credentials", "jwks", "openid", "inventory")


@st.composite
def mutated(draw: st.DrawFn, data: bytes) -> bytes:
    """`data` with a few bytes flipped, cut, duplicated or inserted."""
    out = bytearray(data)
    for _ in range(draw(st.integers(1, 6))):
        if not out:
            break
        at = draw(st.integers(0, len(out) - 1))
        action = draw(st.sampled_from(("flip", "cut", "truncate", "insert", "duplicate")))
        if action == "flip":
            out[at] ^= draw(st.integers(1, 255))
        elif action == "cut":
            del out[at : at + draw(st.integers(1, 64))]
        elif action == "truncate":
            del out[at:]
        elif action == "insert":
            out[at:at] = draw(st.binary(min_size=1, max_size=16))
        else:
            out[at:at] = out[at : at + draw(st.integers(1, 256))]
    return bytes(out)


JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=40),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=12), inner, max_size=4),
    max_leaves=12,
)


def _paths(value: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    out = [prefix]
    if isinstance(value, dict):
        for key, item in value.items():
            out += _paths(item, (*prefix, key))
    elif isinstance(value, list):
        for index, item in enumerate(value):
            out += _paths(item, (*prefix, index))
    return out


def _replace(document: Any, path: tuple[Any, ...], value: Any) -> Any:
    if not path:
        return value
    copy = dict(document) if isinstance(document, dict) else list(document)
    copy[path[0]] = _replace(document[path[0]], path[1:], value)
    return copy


@st.composite
def reshaped(draw: st.DrawFn, data: bytes) -> bytes:
    """A valid JSON document with one subtree (or the whole) replaced by any JSON value."""
    document = json.loads(data.decode("utf-8-sig"))
    path = draw(st.sampled_from(_paths(document)))
    return json.dumps(_replace(document, path, draw(JSON_VALUES))).encode()


@pytest.mark.parametrize("kind", sorted(PARSERS))
def test_valid_samples_parse(kind: str) -> None:
    PARSERS[kind](SAMPLES[kind])


@pytest.mark.parametrize("kind", sorted(PARSERS))
@PROPERTY
@given(data=st.data())
def test_mutated_input_parses_or_is_refused_clearly(kind: str, data: st.DataObject) -> None:
    _ok_or_collector_error(PARSERS[kind], data.draw(mutated(SAMPLES[kind])))


@pytest.mark.parametrize("kind", sorted(PARSERS))
@PROPERTY
@given(blob=st.binary(max_size=2048))
def test_random_bytes_are_refused_clearly(kind: str, blob: bytes) -> None:
    _ok_or_collector_error(PARSERS[kind], blob)


@pytest.mark.parametrize("kind", JSON_FORMATS)
@PROPERTY
@given(data=st.data())
def test_reshaped_json_parses_or_is_refused_clearly(kind: str, data: st.DataObject) -> None:
    _ok_or_collector_error(PARSERS[kind], data.draw(reshaped(SAMPLES[kind])))


@PROPERTY
@given(text=st.text(max_size=300) | st.binary(max_size=300).map(lambda b: base64.b64encode(b).decode()))
def test_credential_values_are_decoded_or_refused(text: str) -> None:
    try:
        parse_value(text)
    except CollectorError:
        pass
    except ValueError as err:  # parse_value's documented refusal of a value that is not CMS
        assert str(err)


@PROPERTY
@given(
    stdout=st.binary(max_size=512),
    stderr=st.binary(max_size=512),
    exit_code=st.integers(-(2**31), 2**31 - 1),
)
def test_script_output_with_any_stderr_and_exit_code(stdout: bytes, stderr: bytes, exit_code: int) -> None:
    _ok_or_collector_error(lambda data: interpret("AOS1", data, stderr, exit_code), stdout)


def test_a_deeply_nested_json_document_is_a_parse_error() -> None:
    with pytest.raises(CollectorError, match="nested too deeply|invalid JSON"):
        PARSERS["clusterconfig"](b"[" * 100_000 + b"]" * 100_000)


BILLION_LAUGHS = b"""<?xml version="1.0"?>
<!DOCTYPE lolz [
 <!ENTITY lol "lol">
 <!ENTITY lol2 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;">
 <!ENTITY lol3 "&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;">
 <!ENTITY lol4 "&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;">
 <!ENTITY lol5 "&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;">
 <!ENTITY lol6 "&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;">
 <!ENTITY lol7 "&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;">
 <!ENTITY lol8 "&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;">
 <!ENTITY lol9 "&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;">
]>
<Config><Schema><Version>&lol9;</Version></Schema></Config>"""
QUADRATIC = (
    b'<?xml version="1.0"?><!DOCTYPE q [<!ENTITY a "'
    + b"x" * 50_000
    + b'">]><Config><Schema><Version>'
    + b"&a;" * 50_000
    + b"</Version></Schema></Config>"
)
EXTERNAL = b"""<?xml version="1.0"?>
<!DOCTYPE c [<!ENTITY secret SYSTEM "file:///etc/passwd">]>
<Config><Schema><Version>&secret;</Version></Schema></Config>"""
EXTERNAL_DTD = b"""<?xml version="1.0"?>
<!DOCTYPE Config SYSTEM "http://127.0.0.1:9/evil.dtd">
<Config><Schema><Version>1</Version></Schema></Config>"""
PARAMETER_ENTITY = b"""<?xml version="1.0"?>
<!DOCTYPE c [<!ENTITY % remote SYSTEM "http://127.0.0.1:9/x.dtd"> %remote;]>
<Config/>"""
XML_ATTACKS = {
    "billion-laughs": BILLION_LAUGHS,
    "quadratic-blowup": QUADRATIC,
    "external-entity": EXTERNAL,
    "external-dtd": EXTERNAL_DTD,
    "parameter-entity": PARAMETER_ENTITY,
}


@pytest.mark.parametrize("attack", sorted(XML_ATTACKS))
@pytest.mark.parametrize("kind", ["configtemplate", "metadata"])
def test_xml_bombs_and_external_entities_are_refused(kind: str, attack: str) -> None:
    started = time.process_time()
    with pytest.raises(CollectorError) as caught:
        PARSERS[kind](XML_ATTACKS[attack])
    assert "DTDs and entities are not allowed" in caught.value.message
    assert "root:" not in str(caught.value)  # nothing of /etc/passwd
    assert time.process_time() - started < 5  # refused before expansion, not after


def test_a_certificate_with_a_broken_extension_is_refused_or_reported() -> None:
    cert = make_certificate("broken.contoso.lab", not_before=days(NOW, -1), not_after=days(NOW, 30))
    der = bytearray(cert.der)
    # Corrupt a byte inside the extensions (near the end, before the signature).
    der[len(der) - 300] ^= 0xFF
    _ok_or_collector_error(PARSERS["der"], bytes(der))
