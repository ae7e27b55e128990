"""Client certificates from PFX and PEM files, and the errors that name what is wrong with them."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.serialization import pkcs12

from collectors.errors import CollectorError, Reason
from collectors.servicefabric.identity import CertificateFile, load_identity
from simulator.pki import days, make_certificate, pfx_bytes, rsa_key

NOW = datetime(2026, 11, 27, tzinfo=UTC)
CA = make_certificate("Identity Test CA", not_before=days(NOW, -10), not_after=days(NOW, 900), is_ca=True)
CLIENT = make_certificate(
    "admin.contoso.lab", not_before=days(NOW, -1), not_after=days(NOW, 400), key=rsa_key("identity-client"), issuer=CA
)


def test_pfx_with_chain_legacy_and_aes(tmp_path: Path) -> None:
    for legacy in (True, False):
        path = tmp_path / f"client-{legacy}.pfx"
        path.write_bytes(pfx_bytes(CLIENT, b"s3cret!", legacy=legacy, chain=(CA,)))
        identity = load_identity(CertificateFile(path, password=b"s3cret!"))
        assert identity.thumbprint == CLIENT.thumbprint
        assert [c.subject for c in identity.chain] == [CA.cert.subject]


def test_pem_certificate_and_key_in_one_file_or_two(tmp_path: Path) -> None:
    both = tmp_path / "both.pem"
    both.write_bytes(CA.pem + CLIENT.pem + CLIENT.key_pem)
    identity = load_identity(CertificateFile(both))
    assert identity.thumbprint == CLIENT.thumbprint and len(identity.chain) == 1
    cert, key = tmp_path / "client.crt", tmp_path / "client.key"
    cert.write_bytes(CLIENT.pem)
    encrypted = CLIENT.key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.BestAvailableEncryption(b"keypass"),
    )
    key.write_bytes(encrypted)
    assert load_identity(CertificateFile(cert, key, b"keypass")).thumbprint == CLIENT.thumbprint
    with pytest.raises(CollectorError) as caught:
        load_identity(CertificateFile(cert, key, b"nope"))
    assert caught.value.reason is Reason.WRONG_PASSWORD
    with pytest.raises(CollectorError) as caught:
        load_identity(CertificateFile(cert, key))
    assert caught.value.reason is Reason.WRONG_PASSWORD and "configure its password" in caught.value.message


@pytest.mark.parametrize(
    ("content", "password", "reason", "text"),
    [
        (lambda: pfx_bytes(CLIENT, b"right"), b"wrong", Reason.WRONG_PASSWORD, "wrong password for PKCS#12 file"),
        (
            lambda: pfx_bytes(CLIENT, b"right"),
            None,
            Reason.WRONG_PASSWORD,
            "PKCS#12 file is password protected; no password given",
        ),
        (lambda: CLIENT.pem, None, Reason.CONFIG_ERROR, "the PEM file holds no private key; set key_path"),
        (
            lambda: CLIENT.pem + CA.key_pem,
            None,
            Reason.CONFIG_ERROR,
            "no certificate in the file matches the private key",
        ),
        (
            lambda: pkcs12.serialize_key_and_certificates(
                b"no key", None, CLIENT.cert, None, serialization.BestAvailableEncryption(b"pw")
            ),
            b"pw",
            Reason.CONFIG_ERROR,
            "the PKCS#12 file holds no private key",
        ),
    ],
)
def test_unusable_files_say_why(
    tmp_path: Path, content: object, password: bytes | None, reason: Reason, text: str
) -> None:
    path = tmp_path / "client.bin"
    path.write_bytes(content())  # type: ignore[operator]
    with pytest.raises(CollectorError) as caught:
        load_identity(CertificateFile(path, password=password))
    assert caught.value.reason is reason
    assert caught.value.message == text
    assert caught.value.source == str(path)


def test_missing_file_is_not_found(tmp_path: Path) -> None:
    with pytest.raises(CollectorError) as caught:
        load_identity(CertificateFile(tmp_path / "absent.pfx"))
    assert caught.value.reason is Reason.NOT_FOUND
