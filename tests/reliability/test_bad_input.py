"""Property tests: every parser of operator or peer data, fed random and mutated input, either parses or
raises its documented error (a CollectorError naming the input, or the protocol module's own error
that the collector turns into one); never another exception.

Inputs are random bytes, valid documents with bytes flipped, cut or inserted, and (for the JSON
formats) valid documents with one subtree replaced by any JSON value. Hypothesis runs derandomized
with a fixed number of examples (CERTMON_FUZZ_EXAMPLES, default 60), so the suite is repeatable;
raise the number for a longer local hunt. XML bombs and external entities: test_xml_attacks.py.
"""

from __future__ import annotations

import base64
import json
import os
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from collectors.adfs.metadata import parse_federation_metadata, parse_jwks, parse_openid_configuration
from collectors.agentconfig import parse_agent_config
from collectors.certfiles import load_certificates
from collectors.certificate import Certificate, LoadedCertificate, certificate_from_der, to_record
from collectors.clusterconfig import parse_cluster_config
from collectors.configtemplate import parse_config_template
from collectors.credentials import parse_credentials, parse_value
from collectors.errors import CollectorError
from collectors.files import parse_json
from collectors.model import Generation
from collectors.servicefabric.api import (
    application_certificates,
    certificate_events,
    parse_cluster_health,
    parse_configuration,
    parse_duration_seconds,
    parse_upgrade_progress,
    parse_upgrade_status,
)
from collectors.sql.connstring import ConnectionStringError, parse_connection_string
from collectors.tls.tds import ENCRYPT_ON, ENCRYPTION, VERSION, TdsProtocolError, build_prelogin, parse_answer
from collectors.winrm import soap
from collectors.winrm.output import interpret, parse_inventory, read_stderr
from simulator.adfs import federation_metadata, jwks
from simulator.lab import Lab, build_lab
from simulator.pki import days, make_certificate, pfx_bytes

NOW = datetime(2026, 11, 27, 12, 0, 0, tzinfo=UTC)
SOURCE = "fuzzed-input"
PROPERTY = settings(
    max_examples=int(os.environ.get("CERTMON_FUZZ_EXAMPLES", "60")),
    derandomize=True,
    database=None,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
REQUEST = soap.Request("uuid:5F1C2C7A-0000-4000-8000-000000000001", b"")


@dataclass(frozen=True)
class Parser:
    """A parser under test and the one error type it may raise."""

    parse: Callable[[bytes], Any]
    error: type[Exception] = CollectorError


def _soap_receive(data: bytes) -> Any:
    root = soap.parse_reply(data, REQUEST)
    return soap.output_of(root, "C0FFEE00-0000-4000-8000-000000000002")


def _sf(parse: Callable[[Any, str], Any]) -> Callable[[bytes], Any]:
    return lambda data: parse(parse_json(data, SOURCE), SOURCE)


def _sf_events(data: bytes) -> Any:
    return list(certificate_events("AOS1", parse_json(data, SOURCE), SOURCE))


def _sf_applications(data: bytes) -> Any:
    return application_certificates(parse_json(data, SOURCE), {"DataEncryptionCertificateThumbprint": "X"}, SOURCE)


PARSERS: dict[str, Parser] = {
    "der": Parser(lambda data: certificate_from_der(data, SOURCE)),
    "pem": Parser(lambda data: load_certificates(data, SOURCE)),
    "pfx": Parser(lambda data: load_certificates(data, SOURCE, b"pw")),
    "configtemplate": Parser(lambda data: parse_config_template(data, SOURCE, Generation.NEW)),
    "clusterconfig": Parser(lambda data: parse_cluster_config(parse_json(data, SOURCE), SOURCE)),
    "localagent": Parser(lambda data: parse_agent_config(parse_json(data, SOURCE), SOURCE)),
    "credentials": Parser(lambda data: parse_credentials(parse_json(data, SOURCE), SOURCE)),
    "metadata": Parser(lambda data: parse_federation_metadata(data, SOURCE)),
    "jwks": Parser(lambda data: parse_jwks(data, SOURCE)),
    "openid": Parser(lambda data: parse_openid_configuration(data, SOURCE)),
    "inventory": Parser(lambda data: parse_inventory("AOS1", data)),
    "clixml": Parser(read_stderr),  # never refuses: stderr only adds warnings
    "soap-receive": Parser(_soap_receive, soap.SoapError),
    "sf-configuration": Parser(_sf(parse_configuration)),
    "sf-upgrade-progress": Parser(_sf(parse_upgrade_progress)),
    "sf-upgrade-status": Parser(_sf(parse_upgrade_status)),
    "sf-health": Parser(_sf(parse_cluster_health)),
    "sf-node-events": Parser(_sf_events),
    "sf-applications": Parser(_sf_applications),
    "tds-prelogin": Parser(parse_answer, TdsProtocolError),
    "connection-string": Parser(
        lambda data: parse_connection_string(data.decode("utf-8", "replace")), ConnectionStringError
    ),
}
JSON_FORMATS = (
    "clusterconfig",
    "localagent",
    "credentials",
    "jwks",
    "openid",
    "inventory",
    "sf-configuration",
    "sf-upgrade-progress",
    "sf-upgrade-status",
    "sf-health",
    "sf-node-events",
    "sf-applications",
)
SAMPLES: dict[str, bytes] = {}


@pytest.fixture(scope="module", autouse=True)
def samples(tmp_path_factory: pytest.TempPathFactory) -> None:
    """One valid document of every format, in SAMPLES (a fixture argument would fill hypothesis's reports)."""
    SAMPLES.update(_samples(build_lab(tmp_path_factory.mktemp("bad-input") / "lab", now=NOW, port=0)))


def _json(value: Any) -> bytes:
    return json.dumps(value).encode()


def _samples(lab: Lab) -> dict[str, bytes]:
    cert = lab.cert("ServiceFabric", "new").issued
    signing = [lab.service_certs["ADFSTokenSigning-new"]]
    inventory = {
        "v": 2,
        "stores": [
            {
                "s": "LocalMachine\\My",
                "c": [{"d": base64.b64encode(cert.der).decode(), "h": True, "t": 24, "p": "Microsoft RSA"}],
            }
        ],
        "sql": [{"i": "MSSQLSERVER", "t": cert.thumbprint}],
        "n": 1,
    }
    clixml = (
        '#< CLIXML\r\n<Objs Version="1.1.0.1" xmlns="http://schemas.microsoft.com/powershell/2004/04">'
        '<Obj S="progress" RefId="0"><TN RefId="0"><T>System.Management.Automation.PSCustomObject</T></TN></Obj>'
        '<S S="Error">Cannot open store_x000D__x000A_</S><S S="Warning">slow node</S></Objs>'
    )
    receive = (
        f'<s:Envelope xmlns:s="{soap.NS_SOAP}" xmlns:a="{soap.NS_ADDRESSING}" xmlns:rsp="{soap.NS_SHELL}">'
        f"<s:Header><a:RelatesTo>{REQUEST.message_id}</a:RelatesTo></s:Header><s:Body><rsp:ReceiveResponse>"
        f'<rsp:Stream Name="stdout" CommandId="C0FFEE00-0000-4000-8000-000000000002">'
        f"{base64.b64encode(b'{}').decode()}</rsp:Stream>"
        f'<rsp:Stream Name="stderr" CommandId="C0FFEE00-0000-4000-8000-000000000002">'
        f"{base64.b64encode(b'warning').decode()}</rsp:Stream>"
        f'<rsp:CommandState CommandId="C0FFEE00-0000-4000-8000-000000000002" State="{soap.STATE_DONE}">'
        f"<rsp:ExitCode>0</rsp:ExitCode></rsp:CommandState></rsp:ReceiveResponse></s:Body></s:Envelope>"
    )
    progress = {
        "UpgradeState": "RollingForwardInProgress",
        "CodeVersion": "7.2.457.9590",
        "ConfigVersion": "2",
        "RollingUpgradeMode": "Monitored",
        "UpgradeDescription": {"UpgradeReplicaSetCheckTimeoutInSeconds": "4294967295"},
        "UpgradeDomains": [{"Name": "0", "State": "Completed"}, {"Name": "1", "State": "InProgress"}],
        "CurrentUpgradeDomainProgress": {"DomainName": "1", "NodeUpgradeProgressList": []},
        "NextUpgradeDomain": "2",
        "UpgradeDurationInMilliseconds": "PT0H2M0S",
        "UpgradeDomainDurationInMilliseconds": "1.02:03:04.5",
        "StartTimestampUtc": "2026-11-27T10:00:00.000Z",
        "FailureReason": "None",
    }
    event = {
        "SourceId": "System.FabricNode",
        "Property": "Certificate_cluster",
        "HealthState": "Warning",
        "Description": f"Certificate expiration: thumbprint = {cert.thumbprint}, expiration = 2026-12-01 10:00:00",
    }
    parameters = [{"Key": "DataAccess_DataEncryptionCertificateThumbprint", "Value": cert.thumbprint}]
    return {
        "der": cert.der,
        "pem": cert.pem,
        "pfx": pfx_bytes(cert, b"pw"),
        "configtemplate": (lab.infrastructure / "ConfigTemplate.xml").read_bytes(),
        "clusterconfig": lab.cluster_config.read_bytes(),
        "localagent": lab.localagent_config.read_bytes(),
        "credentials": lab.credentials_json.read_bytes(),
        "metadata": federation_metadata("adfs.contoso.lab", signing, signing),
        "jwks": _json(jwks(signing)),
        "openid": _json({"issuer": "https://adfs/adfs", "jwks_uri": "https://adfs/adfs/discovery/keys"}),
        "inventory": json.dumps(inventory, separators=(",", ":")).encode() + b"\r\n",
        "clixml": clixml.encode(),
        "soap-receive": receive.encode(),
        "sf-configuration": _json({"ClusterConfiguration": lab.cluster_config.read_text(encoding="utf-8-sig")}),
        "sf-upgrade-progress": _json(progress),
        "sf-upgrade-status": _json(
            {"UpgradeState": "RollingForwardCompleted", "ProgressStatus": 0, "ConfigVersion": "2"}
        ),
        "sf-health": _json(
            {"AggregatedHealthState": "Ok", "NodeHealthStates": [{"Name": "AOS1", "AggregatedHealthState": "Ok"}]}
        ),
        "sf-node-events": _json({"HealthEvents": [event]}),
        "sf-applications": _json([{"Name": "fabric:/AXSF", "TypeName": "AXSFType", "Parameters": parameters}]),
        "tds-prelogin": build_prelogin([(VERSION, b"\x10\x00\x07\xd0\x00\x00"), (ENCRYPTION, bytes([ENCRYPT_ON]))]),
        "connection-string": b"Driver={ODBC Driver 18 for SQL Server};Server=tcp:sql1,1433;Database=AXDB;Encrypt=yes",
    }


def _touch(result: Any) -> None:
    """Read every field of the certificates a parser returned: the model parses some of them lazily."""
    if isinstance(result, LoadedCertificate):
        to_record(result)
    elif isinstance(result, Certificate):
        to_record(LoadedCertificate(result, None, SOURCE))
        assert isinstance(result.problems, tuple)
    elif isinstance(result, list | tuple):
        for item in result:
            _touch(item)


def _parses_or_refuses(kind: str, data: bytes) -> None:
    parser = PARSERS[kind]
    try:
        result = parser.parse(data)
    except parser.error as err:
        assert str(err), "an error without a message"
        if isinstance(err, CollectorError):
            assert err.message, "an error without a message"
            assert err.source.startswith((SOURCE, "AOS1")), f"the error names {err.source!r}, not the input"
        return
    _touch(result)


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
    st.none()
    | st.booleans()
    | st.integers()
    | st.integers(min_value=10**300, max_value=10**4000)
    | st.floats(allow_nan=False)
    | st.text(max_size=40)
    | st.sampled_from(["", "0", "PT", "9" * 5000 + ":00:00", "٣", "2026-13-45T99:99:99Z", "thumbprint = ", "\x00"]),
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
    _touch(PARSERS[kind].parse(SAMPLES[kind]))


@pytest.mark.parametrize("kind", sorted(PARSERS))
@PROPERTY
@given(data=st.data())
def test_mutated_input_parses_or_is_refused_clearly(kind: str, data: st.DataObject) -> None:
    _parses_or_refuses(kind, data.draw(mutated(SAMPLES[kind])))


@pytest.mark.parametrize("kind", sorted(PARSERS))
@PROPERTY
@given(blob=st.binary(max_size=2048))
def test_random_bytes_are_refused_clearly(kind: str, blob: bytes) -> None:
    _parses_or_refuses(kind, blob)


@pytest.mark.parametrize("kind", JSON_FORMATS)
@PROPERTY
@given(data=st.data())
def test_reshaped_json_parses_or_is_refused_clearly(kind: str, data: st.DataObject) -> None:
    _parses_or_refuses(kind, data.draw(reshaped(SAMPLES[kind])))


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
    try:
        interpret("AOS1", stdout, stderr, exit_code)
    except CollectorError as err:
        assert err.source == "AOS1" and err.message


def test_a_deeply_nested_json_document_is_a_parse_error() -> None:
    with pytest.raises(CollectorError, match="nested too deeply|invalid JSON"):
        PARSERS["clusterconfig"].parse(b"[" * 100_000 + b"]" * 100_000)


def test_a_certificate_with_a_broken_extension_is_refused_or_reported() -> None:
    cert = make_certificate("broken.contoso.lab", not_before=days(NOW, -1), not_after=days(NOW, 30))
    der = bytearray(cert.der)
    # Corrupt a byte inside the extensions (near the end, before the signature).
    der[len(der) - 300] ^= 0xFF
    _parses_or_refuses("der", bytes(der))


def test_regression_an_unknown_x509_version_is_a_parse_error() -> None:
    # cryptography's InvalidVersion is no ValueError: it escaped every certificate parser.
    der = bytearray(SAMPLES["der"])
    at = der.index(b"\xa0\x03\x02\x01\x02") + 4  # [0] EXPLICIT INTEGER 2 (v3)
    der[at] = 0x03
    with pytest.raises(CollectorError, match="malformed certificate"):
        certificate_from_der(bytes(der), SOURCE)
    with pytest.raises(CollectorError):
        load_certificates(bytes(der), SOURCE)


def test_regression_a_json_number_past_pythons_digit_limit_is_a_parse_error() -> None:
    # int() of a 5000-digit literal raises a plain ValueError, which parse_json did not expect.
    with pytest.raises(CollectorError, match="invalid JSON"):
        parse_json(b'{"clusterConfigurationVersion": ' + b"9" * 5000 + b"}", SOURCE)
    with pytest.raises(CollectorError, match="inventory output is invalid JSON") as caught:
        parse_inventory("AOS1", b'{"v": ' + b"1" * 5000 + b"}")
    assert caught.value.source == "AOS1"


def test_regression_a_pkcs7_that_is_not_signed_data_is_a_parse_error() -> None:
    # ContentInfo of type `data` (1.2.840.113549.1.7.1): cryptography raises UnsupportedAlgorithm.
    data_content = bytes.fromhex("300f06092a864886f70d010701a0020400")
    with pytest.raises(CollectorError):
        load_certificates(data_content, SOURCE)
    pem = b"-----BEGIN PKCS7-----\n" + base64.encodebytes(data_content) + b"-----END PKCS7-----\n"
    with pytest.raises(CollectorError, match="malformed PKCS#7"):
        load_certificates(pem, SOURCE)


@pytest.mark.parametrize("kind", ["sf-upgrade-progress", "sf-health", "sf-node-events", "sf-applications"])
@pytest.mark.parametrize("value", [True, 1, "text", {"a": 1}])
def test_regression_sf_lists_of_another_type_have_no_items(kind: str, value: Any) -> None:
    # `for x in answer.get("UpgradeDomains") or ()` raised TypeError on a number or a boolean.
    document = json.loads(SAMPLES[kind])
    for item in document if isinstance(document, list) else [document]:
        for key in ("UpgradeDomains", "NodeHealthStates", "HealthEvents", "Parameters"):
            if key in item:
                item[key] = value
    PARSERS[kind].parse(_json(document))


@pytest.mark.parametrize("value", [10**400, "9" * 5000 + ":00:00", "P" + "9" * 400 + "D", float("inf")])
def test_regression_durations_out_of_range_are_unknown(value: Any) -> None:
    assert parse_duration_seconds(value) is None


@pytest.mark.parametrize("kind", [[], {}, ["capi"], True, 1.5])
def test_regression_a_provider_type_of_the_wrong_type_is_bad_output(kind: Any) -> None:
    # The fast path once looked the key kind up in a set before checking its type: TypeError on a list.
    document = json.loads(SAMPLES["inventory"])
    document["stores"][0]["c"][0]["t"] = kind
    with pytest.raises(CollectorError, match=r"stores\[0\]\.c\[0\]\.t has the wrong type") as caught:
        parse_inventory("AOS1", _json(document))
    assert caught.value.reason == "bad_output"
