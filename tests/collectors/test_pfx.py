"""PKCS#12 opened for certificates only: the same answer as cryptography's full load, without loading keys whole.

The files are made by cryptography (AES-256 + SHA-256 MAC, 3DES + SHA-1 MAC) and by
`openssl pkcs12 -export -legacy` (RC2-40 certificates, 3DES key, SHA-1 MAC: what Windows exports).
"""

from __future__ import annotations

import shutil
import subprocess
from datetime import UTC, datetime

import pytest
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.hazmat.primitives.serialization import pkcs12

from collectors.certfiles import load_certificates
from collectors.errors import CertificateError, Reason
from collectors.pfx import WrongPassword, pkcs12_kdf, split_pkcs12
from simulator.pki import make_certificate, pfx_bytes

NOW = datetime(2026, 11, 27, tzinfo=UTC)
PASSWORD = b"Pfx-Passw0rd!"
OPENSSL = shutil.which("openssl")


@pytest.fixture(scope="module")
def files(tmp_path_factory: pytest.TempPathFactory) -> dict[str, bytes]:
    folder = tmp_path_factory.mktemp("pfx")
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca = make_certificate("PFX CA", not_before=NOW, not_after=NOW.replace(year=2030), key=ca_key, is_ca=True)
    leaf = make_certificate(
        "pfx.contoso.lab",
        not_before=NOW,
        not_after=NOW.replace(year=2028),
        key=rsa.generate_private_key(65537, 2048),
        issuer=ca,
    )
    made = {
        "aes": pfx_bytes(leaf, PASSWORD, legacy=False, chain=(ca,)),
        "3des": pfx_bytes(leaf, PASSWORD, legacy=True, chain=(ca,)),
        "no-key": pkcs12.serialize_key_and_certificates(
            b"ca only",
            None,
            None,
            [ca.cert],
            pkcs12.serialization.BestAvailableEncryption(PASSWORD),  # type: ignore[attr-defined]
        ),
    }
    if OPENSSL is not None:
        (folder / "leaf.pem").write_bytes(leaf.pem + leaf.key_pem + ca.pem)
        out = folder / "legacy.pfx"
        subprocess.run(
            [
                OPENSSL,
                "pkcs12",
                "-export",
                "-legacy",
                "-in",
                str(folder / "leaf.pem"),
                "-out",
                str(out),
                "-passout",
                f"pass:{PASSWORD.decode()}",
            ],
            check=True,
            capture_output=True,
        )
        made["rc2-40"] = out.read_bytes()
    return made


def _reference(data: bytes) -> list[tuple[str, bool]]:
    bundle = pkcs12.load_pkcs12(data, PASSWORD)
    first = [(bundle.cert.certificate.subject.rfc4514_string(), bundle.key is not None)] if bundle.cert else []
    return first + [(c.certificate.subject.rfc4514_string(), False) for c in bundle.additional_certs]


@pytest.mark.parametrize("name", ["aes", "3des", "no-key", "rc2-40"])
def test_certificates_only_agrees_with_the_full_load(files: dict[str, bytes], name: str) -> None:
    if name not in files:
        pytest.skip("openssl is not installed")
    split = split_pkcs12(files[name], PASSWORD)
    assert [(c.subject.rfc4514_string(), key) for c, key in split.certificates] == _reference(files[name])


def test_a_wrong_password_is_told_by_the_mac(files: dict[str, bytes]) -> None:
    for data in files.values():
        with pytest.raises(WrongPassword):
            split_pkcs12(data, b"not-it")
    with pytest.raises(CertificateError) as caught:
        load_certificates(files["aes"], "modern.pfx", b"not-it")
    assert caught.value.reason is Reason.WRONG_PASSWORD and "not-it" not in str(caught.value)


def test_the_key_derivation_matches_a_published_vector() -> None:
    # RFC 7292 gives no vectors; these are from Dr Stephen Henson's PKCS#12 test vectors
    # (drh-consultancy.demon.co.uk/test.txt, set 1), which OpenSSL's and Bouncy Castle's
    # PKCS#12 key-derivation tests use: SHA-1, password "smeg", salt 0A58CF64530D823F, 1 iteration.
    password = "smeg".encode("utf-16-be") + b"\0\0"
    salt = bytes.fromhex("0A58CF64530D823F")
    assert pkcs12_kdf("sha1", password, salt, purpose=1, iterations=1, size=24).hex().upper() == (
        "8AAAE6297B6CB04642AB5B077851284EB7128F1A2A7FBCA3"
    )
    assert pkcs12_kdf("sha1", password, salt, purpose=2, iterations=1, size=8).hex().upper() == "79993DFE048D3B76"
