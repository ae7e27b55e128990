"""Credentials.json: recipients of CMS values made with cryptography's PKCS#7 envelope builder, never decrypted."""

from __future__ import annotations

import base64
import json
from datetime import UTC, datetime
from pathlib import Path

import pytest
from asn1crypto import algos, cms
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.serialization import Encoding, pkcs7

from collectors.base import Deadline
from collectors.certificate import certificate_from_der
from collectors.credentials import (
    CredentialsCollector,
    CredentialsFacts,
    RecipientIndex,
    encipherment_generations,
    keys_not_on,
    parse_value,
    value_encryptions,
)
from collectors.errors import CollectorError, Reason
from collectors.model import CertReference, Generation
from simulator.agentshare import credentials_document, decrypt_value, encrypt_value, write_json
from simulator.pki import Issued, days, make_certificate, rsa_key

NOW = datetime(2026, 11, 27, 12, 0, tzinfo=UTC)


@pytest.fixture(scope="module")
def certs() -> dict[str, Issued]:
    """Old and new encipherment certificates (same subject, as rotations make them) and a stranger."""
    ca = make_certificate("Contoso Lab Root CA", not_before=days(NOW, -900), not_after=days(NOW, 900), is_ca=True)
    return {
        "old": make_certificate(
            "axdataencipherment", not_before=days(NOW, -700), not_after=days(NOW, 30), key=rsa_key("enc-old"), issuer=ca
        ),
        "new": make_certificate(
            "axdataencipherment", not_before=days(NOW, -1), not_after=days(NOW, 700), key=rsa_key("enc-new"), issuer=ca
        ),
        "stranger": make_certificate(
            "someone-else", not_before=days(NOW, -1), not_after=days(NOW, 700), key=rsa_key("stranger")
        ),
    }


def certificate(issued: Issued):  # type: ignore[no-untyped-def]
    return certificate_from_der(issued.der, "test")


def write_credentials(path: Path, certs: dict[str, Issued], layout: dict[str, tuple[str, ...]]) -> None:
    values = {}
    for key, recipients in layout.items():
        group, name = key.split(".")
        values[(group, name)] = encrypt_value(f"secret of {key}".encode(), [certs[r].cert for r in recipients])
    write_json(path, credentials_document(values))


LAYOUT = {
    "AosPrincipal.AccountPassword": ("old",),
    "AosSqlAuth.SqlUser": ("new",),
    "AosSqlAuth.SqlPwd": ("old", "new"),
    "AosDWAuth.DWPwd": ("stranger",),
}


def collect(path: Path) -> tuple[CredentialsFacts, list[str]]:
    observation = CredentialsCollector(path).collect(path.name, Deadline.after(5))
    assert isinstance(observation.facts, CredentialsFacts)
    return observation.facts, [p.message for p in observation.problems]


def test_recipients_by_issuer_and_serial(tmp_path: Path, certs: dict[str, Issued]) -> None:
    path = tmp_path / "Credentials.json"
    write_credentials(path, certs, LAYOUT)
    facts, problems = collect(path)
    assert problems == []
    assert [v.key for v in facts.values] == list(LAYOUT)
    both = facts.values[2]
    # RecipientInfos is a DER SET OF: the order is the encoding's, not the builder's.
    assert sorted((r.kind, r.serial) for r in both.recipients) == sorted(
        [("issuer_serial", certs["old"].cert.serial_number), ("issuer_serial", certs["new"].cert.serial_number)]
    )
    assert {r.issuer for r in both.recipients} == {"Common Name: Contoso Lab Root CA"}
    assert {v.content_algorithm for v in facts.values} == {"aes256_cbc"}


def test_old_new_and_unknown(tmp_path: Path, certs: dict[str, Issued]) -> None:
    path = tmp_path / "Credentials.json"
    write_credentials(path, certs, LAYOUT)
    facts, _ = collect(path)
    old, new = certs["old"].thumbprint, certs["new"].thumbprint
    # The inventory knows both encipherment certificates but not the stranger.
    index = RecipientIndex([certificate(certs["old"]), certificate(certs["new"])])
    generations = encipherment_generations(
        [
            CertReference("ServiceFabricEncryption", new, Generation.NEW, "ConfigTemplate.xml", "configtemplate"),
            CertReference("ServiceFabricEncryption", old, Generation.OLD, "ConfigTemplate.xml (old)", "configtemplate"),
            CertReference("DataEncryption", "C" * 40, Generation.NEW, "x", "configtemplate"),
        ]
    )
    seen = sorted((e.key, e.generation, e.thumbprint) for e in value_encryptions(facts, index, generations))
    assert seen == sorted(
        [
            ("AosPrincipal.AccountPassword", "old", old),
            ("AosSqlAuth.SqlUser", "new", new),
            ("AosSqlAuth.SqlPwd", "old", old),
            ("AosSqlAuth.SqlPwd", "new", new),
            ("AosDWAuth.DWPwd", "unknown", ""),
        ]
    )
    encryptions = value_encryptions(facts, index, generations)
    assert keys_not_on(encryptions, new) == ["AosPrincipal.AccountPassword", "AosDWAuth.DWPwd"]


def test_same_certificate_known_but_not_referenced_is_unknown(tmp_path: Path, certs: dict[str, Issued]) -> None:
    path = tmp_path / "Credentials.json"
    write_credentials(path, certs, {"AosSqlAuth.SqlPwd": ("old",)})
    facts, _ = collect(path)
    index = RecipientIndex([certificate(certs["old"])])
    ((encryption),) = value_encryptions(facts, index, {})
    assert (encryption.thumbprint, encryption.generation) == (certs["old"].thumbprint, "unknown")


def test_subject_key_identifier_recipient(certs: dict[str, Issued]) -> None:
    # .NET's EnvelopedCms can address a recipient by subject key identifier; cryptography cannot, so
    # the structure is made with asn1crypto (nothing is ever decrypted, so a dummy encrypted key will do).
    ski = certificate(certs["new"]).subject_key_identifier
    recipient = cms.KeyTransRecipientInfo(
        {
            "version": "v2",
            "rid": cms.RecipientIdentifier({"subject_key_identifier": bytes.fromhex(ski)}),
            "key_encryption_algorithm": cms.KeyEncryptionAlgorithm({"algorithm": "rsaes_pkcs1v15"}),
            "encrypted_key": b"\x00" * 256,
        }
    )
    envelope = cms.EnvelopedData(
        {
            "version": "v2",
            "recipient_infos": [cms.RecipientInfo({"ktri": recipient})],
            "encrypted_content_info": cms.EncryptedContentInfo(
                {
                    "content_type": "data",
                    "content_encryption_algorithm": algos.EncryptionAlgorithm(
                        {"algorithm": "aes256_cbc", "parameters": b"\x01" * 16}
                    ),
                    "encrypted_content": b"\x02" * 32,
                }
            ),
        }
    )
    value = base64.b64encode(cms.ContentInfo({"content_type": "enveloped_data", "content": envelope}).dump()).decode()
    (parsed,), algorithm = parse_value(value)
    assert (parsed.kind, parsed.subject_key_identifier, algorithm) == ("subject_key_identifier", ski, "aes256_cbc")
    index = RecipientIndex([certificate(certs["new"]), certificate(certs["old"])])
    assert index.thumbprint(parsed) == certs["new"].thumbprint


def test_values_round_trip_with_the_private_key(certs: dict[str, Issued]) -> None:
    value = encrypt_value(b"P@ssw0rd!", [certs["old"].cert, certs["new"].cert])
    candidates = [(certs["new"].cert, certs["new"].key)]
    assert decrypt_value(value, candidates) == b"P@ssw0rd!"  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="does not contain the specified recipient"):
        decrypt_value(value, [(certs["stranger"].cert, certs["stranger"].key)])  # type: ignore[list-item]


def test_bad_values_are_problems_naming_the_key(tmp_path: Path, certs: dict[str, Issued]) -> None:
    signed = (
        pkcs7.PKCS7SignatureBuilder().set_data(b"x").add_signer(certs["new"].cert, certs["new"].key, hashes.SHA256())
    )  # type: ignore[arg-type]
    document = {
        "AosSqlAuth": {
            "SqlUser": encrypt_value(b"axdbadmin", [certs["new"].cert]),
            "SqlPwd": "not base64 at all!",
            "Plain": base64.b64encode(b"just text").decode(),
            "Signed": base64.b64encode(signed.sign(Encoding.DER, [])).decode(),
            "Port": 1433,
            "List": ["a"],
            "Empty": "",
        }
    }
    path = tmp_path / "Credentials.json"
    path.write_text(json.dumps(document), encoding="utf-8")
    facts, problems = collect(path)
    assert [v.key for v in facts.values] == ["AosSqlAuth.SqlUser"]
    assert problems == [
        f"{path}: AosSqlAuth.SqlPwd: not base64",
        f"{path}: AosSqlAuth.Plain: not CMS EnvelopedData: " + problems[1].split("not CMS EnvelopedData: ")[1],
        f"{path}: AosSqlAuth.Signed: CMS signed_data, expected enveloped_data",
        f"{path}: AosSqlAuth.Port: int, expected a string",
        f"{path}: AosSqlAuth.List: an array, expected a string",
        f"{path}: AosSqlAuth.Empty: empty value",
    ]
    assert "axdbadmin" not in " ".join(problems)


@pytest.mark.parametrize(
    ("content", "reason", "words"),
    [
        (b'{"AosSqlAuth": {"SqlPwd": "###"}}', Reason.PARSE_ERROR, "no readable encrypted value"),
        (b"[1, 2]", Reason.PARSE_ERROR, "expected a JSON object"),
        (b'{"AosSqlAuth": ', Reason.PARSE_ERROR, "invalid JSON"),
    ],
)
def test_unusable_file_fails_the_target(tmp_path: Path, content: bytes, reason: Reason, words: str) -> None:
    path = tmp_path / "Credentials.json"
    path.write_bytes(content)
    with pytest.raises(CollectorError) as caught:
        collect(path)
    assert caught.value.reason is reason and words in str(caught.value)


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(CollectorError) as caught:
        collect(tmp_path / "Credentials.json")
    assert caught.value.reason is Reason.NOT_FOUND


def test_utf8_bom_and_crlf_as_windows_writes_it(tmp_path: Path, certs: dict[str, Issued]) -> None:
    path = tmp_path / "Credentials.json"
    write_credentials(path, certs, {"AosPrincipal.AccountPassword": ("new",)})
    path.write_bytes(b"\xef\xbb\xbf" + path.read_bytes())
    facts, problems = collect(path)
    assert problems == [] and len(facts.values) == 1
