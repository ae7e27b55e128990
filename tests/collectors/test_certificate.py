"""The certificate model against OpenSSL, on a varied set of real files."""

from __future__ import annotations

import json
import subprocess
import threading
from datetime import UTC, datetime
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from cryptography.x509.oid import NameOID

from collectors.certfiles import load_certificate_file, load_certificates
from collectors.certificate import certificate_from_der, is_thumbprint, normalize_thumbprint
from collectors.errors import CertificateError, Reason, ThumbprintError
from simulator.pki import make_certificate, pfx_bytes

NOW = datetime(2026, 11, 27, tzinfo=UTC)
PASSWORD = "Pfx-Passw0rd!"


def test_normalize_accepts_what_operators_paste() -> None:
    canonical = "A1B2C3D4E5F60718293A4B5C6D7E8F9012345678"
    pasted = [
        canonical.lower(),
        "a1 b2 c3 d4 e5 f6 07 18 29 3a 4b 5c 6d 7e 8f 90 12 34 56 78",
        "A1:B2:C3:D4:E5:F6:07:18:29:3A:4B:5C:6D:7E:8F:90:12:34:56:78",
        "\u200ea1b2c3d4e5f60718293a4b5c6d7e8f9012345678",
        "  A1B2C3D4E5F60718293A4B5C6D7E8F9012345678\r\n",
    ]
    for value in pasted:
        assert normalize_thumbprint(value) == canonical
        assert is_thumbprint(value)


@pytest.mark.parametrize(
    ("value", "fragment"),
    [
        ("", "is empty"),
        ("A1B2", "has 4 hexadecimal digits, expected 40"),
        ("G1B2C3D4E5F60718293A4B5C6D7E8F9012345678", "contains 'G'"),
        ("A1B2C3D4E5F60718293A4B5C6D7E8F901234567800", "has 42 hexadecimal digits"),
    ],
)
def test_normalize_rejects_non_thumbprints(value: str, fragment: str) -> None:
    with pytest.raises(ThumbprintError, match=fragment):
        normalize_thumbprint(value)
    assert not is_thumbprint(value)


def _openssl(*args: str, data: bytes | None = None) -> str:
    done = subprocess.run(["openssl", *args], input=data, capture_output=True, check=True)
    return done.stdout.decode()


def _openssl_facts(pem: bytes) -> tuple[str, str]:
    """(SHA-1 fingerprint without colons, notAfter as ISO Z) as OpenSSL prints them."""
    out = _openssl("x509", "-noout", "-fingerprint", "-sha1", "-enddate", data=pem)
    fields = dict(line.split("=", 1) for line in out.strip().splitlines())
    fingerprint = next(v for k, v in fields.items() if "Fingerprint" in k).replace(":", "")
    end = datetime.strptime(fields["notAfter"], "%b %d %H:%M:%S %Y %Z").replace(tzinfo=UTC)
    return fingerprint, end.strftime("%Y-%m-%dT%H:%M:%SZ")


@pytest.fixture(scope="module")
def varied(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Certificates of every shape an estate holds, written as PEM, DER, PFX and PKCS#7 files."""
    folder = tmp_path_factory.mktemp("varied")
    files: dict[str, Path] = {}
    ca = make_certificate(
        "Varied Root",
        not_before=NOW.replace(year=2020),
        not_after=NOW.replace(year=2040),
        key=rsa.generate_private_key(65537, 2048),
        is_ca=True,
    )
    specs = {
        "rsa1024": rsa.generate_private_key(65537, 1024),
        "rsa2048": rsa.generate_private_key(65537, 2048),
        "rsa3072": rsa.generate_private_key(65537, 3072),
        "rsa4096": rsa.generate_private_key(65537, 4096),
        "p256": ec.generate_private_key(ec.SECP256R1()),
        "p384": ec.generate_private_key(ec.SECP384R1()),
        "ed25519": ed25519.Ed25519PrivateKey.generate(),
    }
    for name, key in specs.items():
        issued = make_certificate(
            f"{name}.contoso.lab",
            not_before=NOW,
            not_after=NOW.replace(year=2028),
            key=key,
            issuer=ca,
            dns_names=(f"{name}.contoso.lab",),
        )
        files[f"{name}.pem"] = folder / f"{name}.pem"
        files[f"{name}.pem"].write_bytes(issued.pem)
    far = make_certificate(
        "far-future", not_before=NOW, not_after=datetime(2061, 3, 4, 5, 6, 7, tzinfo=UTC), key=specs["p256"]
    )
    files["past2049.der"] = folder / "past2049.der"
    files["past2049.der"].write_bytes(far.der)
    no_cn = make_certificate(
        None,
        not_before=NOW,
        not_after=NOW.replace(year=2027),
        key=specs["p256"],
        extra_subject=((NameOID.ORGANIZATION_NAME, "No Common Name Ltd"),),
    )
    files["nocn.pem"] = folder / "nocn.pem"
    files["nocn.pem"].write_bytes(no_cn.pem)
    accented = make_certificate(
        "Überprüfung Zertifikat – 证书",
        not_before=NOW,
        not_after=NOW.replace(year=2029),
        key=specs["rsa2048"],
        extra_subject=((NameOID.ORGANIZATION_NAME, "Société Générale Test"),),
    )
    files["nonascii.der"] = folder / "nonascii.der"
    files["nonascii.der"].write_bytes(accented.der)
    rsa_leaf = make_certificate(
        "pfx.contoso.lab", not_before=NOW, not_after=NOW.replace(year=2027), key=specs["rsa2048"], issuer=ca
    )
    files["modern.pfx"] = folder / "modern.pfx"
    files["modern.pfx"].write_bytes(pfx_bytes(rsa_leaf, PASSWORD.encode(), legacy=False, chain=(ca,)))
    # A PFX made by OpenSSL's -legacy export: RC2-40 for the certificates, 3DES for the key,
    # exactly what Windows exports by default.
    (folder / "leaf.pem").write_bytes(rsa_leaf.pem + rsa_leaf.key_pem)
    files["legacy.pfx"] = folder / "legacy.pfx"
    _openssl(
        "pkcs12",
        "-export",
        "-legacy",
        "-in",
        str(folder / "leaf.pem"),
        "-out",
        str(files["legacy.pfx"]),
        "-passout",
        f"pass:{PASSWORD}",
    )
    files["chain.p7b"] = folder / "chain.p7b"
    (folder / "both.pem").write_bytes(rsa_leaf.pem + ca.pem)
    _openssl("crl2pkcs7", "-nocrl", "-certfile", str(folder / "both.pem"), "-out", str(files["chain.p7b"]))
    (folder / "password.txt").write_text(PASSWORD + "\n")
    return files


def _openssl_certs(path: Path) -> list[tuple[str, str]]:
    """Every certificate of a file as OpenSSL sees it."""
    if path.suffix == ".pfx":
        pem = _openssl("pkcs12", "-in", str(path), "-nokeys", "-passin", f"pass:{PASSWORD}", "-legacy").encode()
    elif path.suffix == ".p7b":
        pem = _openssl("pkcs7", "-in", str(path), "-print_certs").encode()
    elif path.suffix == ".der":
        pem = _openssl("x509", "-inform", "DER", "-in", str(path)).encode()
    else:
        pem = path.read_bytes()
    blocks = [
        b"-----BEGIN CERTIFICATE-----" + part.split(b"-----END CERTIFICATE-----")[0] + b"-----END CERTIFICATE-----\n"
        for part in pem.split(b"-----BEGIN CERTIFICATE-----")[1:]
    ]
    return sorted(_openssl_facts(block) for block in blocks)


def test_inspect_agrees_with_openssl(varied: dict[str, Path], run_cli) -> None:  # type: ignore[no-untyped-def]
    paths = [str(p) for p in varied.values()]
    password_file = str(next(iter(varied.values())).parent / "password.txt")
    done = run_cli("inspect", "--format", "json", "--password-file", password_file, *paths)
    assert done.returncode == 0, done.stderr
    records = json.loads(done.stdout)
    for path in varied.values():
        ours = sorted((r["thumbprint"], r["not_after"]) for r in records if r["path"] == str(path))
        assert ours == _openssl_certs(path), path.name
    assert len(records) == len(varied) + 2  # the modern PFX and the PKCS#7 carry the CA too


def test_records_carry_the_model_fields(varied: dict[str, Path]) -> None:
    (ed,) = load_certificate_file(varied["ed25519.pem"])
    assert ed.certificate.key_algorithm == "Ed25519"
    assert ed.certificate.signature_algorithm == "sha256WithRSAEncryption"  # signed by the RSA root
    assert ed.certificate.dns_names == ("ed25519.contoso.lab",)
    assert ed.has_private_key is False
    (p384,) = load_certificate_file(varied["p384.pem"])
    assert (p384.certificate.key_algorithm, p384.certificate.key_size) == ("EC secp384r1", 384)
    (big,) = load_certificate_file(varied["rsa4096.pem"])
    assert (big.certificate.key_algorithm, big.certificate.key_size) == ("RSA", 4096)
    assert big.certificate.signature_algorithm == "sha256WithRSAEncryption"
    assert big.certificate.issuer_cn == "Varied Root" and not big.certificate.self_signed
    assert "serverAuth" in big.certificate.extended_key_usage
    assert "digital_signature" in big.certificate.key_usage
    (far,) = load_certificate_file(varied["past2049.der"])
    assert far.certificate.not_after == datetime(2061, 3, 4, 5, 6, 7, tzinfo=UTC)
    assert far.certificate.self_signed
    assert far.certificate.signature_algorithm == "ecdsa-with-SHA256"
    (nocn,) = load_certificate_file(varied["nocn.pem"])
    assert nocn.certificate.subject_cn == "" and nocn.certificate.subject == "O=No Common Name Ltd"
    (accented,) = load_certificate_file(varied["nonascii.der"])
    assert accented.certificate.subject_cn == "Überprüfung Zertifikat – 证书"
    legacy = load_certificate_file(varied["legacy.pfx"], PASSWORD.encode())
    assert [item.has_private_key for item in legacy] == [True]
    modern = load_certificate_file(varied["modern.pfx"], PASSWORD.encode())
    assert [item.has_private_key for item in modern] == [True, False]
    assert legacy[0].certificate == modern[0].certificate


def test_pem_with_its_key_has_private_key(tmp_path: Path) -> None:
    issued = make_certificate(
        "withkey", not_before=NOW, not_after=NOW.replace(year=2027), key=ec.generate_private_key(ec.SECP256R1())
    )
    other = make_certificate(
        "other", not_before=NOW, not_after=NOW.replace(year=2027), key=ec.generate_private_key(ec.SECP256R1())
    )
    loaded = load_certificates(issued.pem + other.pem + issued.key_pem, "bundle.pem")
    assert [(i.certificate.subject_cn, i.has_private_key) for i in loaded] == [("withkey", True), ("other", False)]


def test_base64_without_headers_is_accepted() -> None:
    issued = make_certificate(
        "b64", not_before=NOW, not_after=NOW.replace(year=2027), key=ec.generate_private_key(ec.SECP256R1())
    )
    import base64

    (loaded,) = load_certificates(base64.encodebytes(issued.der), "winrm-output")
    assert loaded.certificate.thumbprint == issued.thumbprint


@pytest.mark.parametrize(
    ("content", "reason", "fragment"),
    [
        (b"", Reason.PARSE_ERROR, "empty file"),
        (b"hello, I am a text file\n", Reason.PARSE_ERROR, "not a certificate"),
        (b"\x00\x01\x02\x03garbage", Reason.PARSE_ERROR, "not a certificate"),
        (b"-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n", Reason.PARSE_ERROR, "malformed"),
    ],
)
def test_bad_blobs_raise_clear_errors(content: bytes, reason: Reason, fragment: str) -> None:
    with pytest.raises(CertificateError) as caught:
        load_certificates(content, "bad.cer")
    assert caught.value.reason is reason
    assert fragment in str(caught.value) and str(caught.value).startswith("bad.cer: ")


def test_truncated_der_and_pfx_say_truncated(varied: dict[str, Path]) -> None:
    der = varied["past2049.der"].read_bytes()
    with pytest.raises(CertificateError, match="truncated"):
        load_certificates(der[: len(der) // 2], "half.der")
    pfx = varied["modern.pfx"].read_bytes()
    with pytest.raises(CertificateError, match="truncated"):
        load_certificates(pfx[:300], "half.pfx", PASSWORD.encode())


def test_pfx_password_errors(varied: dict[str, Path]) -> None:
    with pytest.raises(CertificateError, match="wrong password") as caught:
        load_certificate_file(varied["modern.pfx"], b"not-it")
    assert caught.value.reason is Reason.WRONG_PASSWORD
    assert "not-it" not in str(caught.value)
    with pytest.raises(CertificateError, match="no password given"):
        load_certificate_file(varied["legacy.pfx"])


def test_inspect_reports_bad_files_and_prints_the_rest(varied: dict[str, Path], tmp_path: Path, run_cli) -> None:  # type: ignore[no-untyped-def]
    garbage = tmp_path / "notes.txt"
    garbage.write_text("not a certificate at all")
    truncated = tmp_path / "cut.der"
    truncated.write_bytes(varied["past2049.der"].read_bytes()[:200])
    missing = tmp_path / "missing.pem"
    done = run_cli(
        "inspect",
        "--format",
        "json",
        str(garbage),
        str(varied["rsa2048.pem"]),
        str(truncated),
        str(missing),
        str(varied["modern.pfx"]),
    )
    assert done.returncode == 1
    errors = done.stderr.strip().splitlines()
    assert len(errors) == 4
    assert errors[0].startswith(f"{garbage}: not a certificate")
    assert errors[1].startswith(f"{truncated}: truncated")
    assert errors[2] == f"{missing}: file not found"
    assert errors[3].startswith(f"{varied['modern.pfx']}: PKCS#12 file is password protected")
    records = json.loads(done.stdout)
    assert [r["path"] for r in records] == [str(varied["rsa2048.pem"])]
    record = records[0]
    for key in (
        "path",
        "thumbprint",
        "sha256",
        "subject",
        "issuer",
        "subject_cn",
        "dns_names",
        "serial",
        "not_before",
        "not_after",
        "key_algorithm",
        "key_size",
        "signature_algorithm",
        "self_signed",
        "has_private_key",
    ):
        assert key in record
    assert record["not_after"].endswith("Z")


def test_inspect_table_output(varied: dict[str, Path], run_cli) -> None:  # type: ignore[no-untyped-def]
    done = run_cli("inspect", str(varied["p256.pem"]))
    assert done.returncode == 0
    assert "p256.contoso.lab" in done.stdout and "THUMBPRINT" in done.stdout


def test_parsed_records_are_interned() -> None:
    issued = make_certificate(
        "interned", not_before=NOW, not_after=NOW.replace(year=2027), key=ec.generate_private_key(ec.SECP256R1())
    )
    assert certificate_from_der(issued.der) is certificate_from_der(bytes(issued.der))


def test_record_fields_equal_what_cryptography_reports(varied: dict[str, Path]) -> None:
    """Thumbprint and notAfter set on creation, the rest read lazily: each equals cryptography's own answer."""
    for name, path in varied.items():
        if path.suffix in (".pfx", ".p7b"):
            continue
        (loaded,) = load_certificate_file(path)
        record = loaded.certificate
        parsed = x509.load_der_x509_certificate(record.der)
        assert record.thumbprint == parsed.fingerprint(hashes.SHA1()).hex().upper(), name
        assert record.not_after == parsed.not_valid_after_utc, name
        assert record.not_before == parsed.not_valid_before_utc, name
        assert record.not_after_ts == parsed.not_valid_after_utc.timestamp(), name
        assert record.sha256 == parsed.fingerprint(hashes.SHA256()).hex().upper(), name
        assert record.subject == parsed.subject.rfc4514_string(), name
        assert record.issuer == parsed.issuer.rfc4514_string(), name
        # Seen before: the same record, whatever buffer type the bytes come in.
        assert certificate_from_der(memoryview(bytearray(record.der))) is record


def test_fields_every_evaluation_reads_leave_no_parsed_certificate_behind() -> None:
    """not_before, the CNs, the serial and the key identifier come from one parse that is dropped, not kept."""
    key = ec.generate_private_key(ec.SECP256R1())
    ca = make_certificate("Kept Issuing CA", not_before=NOW, not_after=NOW.replace(year=2030), key=key, is_ca=True)
    issued = [
        make_certificate(f"kept{i}.contoso.lab", not_before=NOW, not_after=NOW.replace(year=2028), key=key, issuer=ca)
        for i in range(2)
    ]
    first, second = (certificate_from_der(i.der) for i in issued)
    parsed = x509.load_der_x509_certificate(first.der)
    assert first.subject_key_identifier == _ski(parsed)
    assert (first.not_before, first.subject_cn, first.issuer_cn) == (NOW, "kept0.contoso.lab", "Kept Issuing CA")
    assert first.serial.lstrip("0") == format(parsed.serial_number, "X")
    with pytest.raises(AttributeError):
        object.__getattribute__(first, "parsed")
    # The issuer's name is one string however many certificates it signed.
    assert second.issuer_cn is first.issuer_cn
    # Once kept for other reasons (a chain check, inspect), the kept parse serves those fields too.
    assert second.parsed.serial_number and second.serial and second.subject_cn == "kept1.contoso.lab"


def _ski(parsed: x509.Certificate) -> str:
    try:
        return parsed.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value.digest.hex().upper()
    except x509.ExtensionNotFound:
        return ""


def test_lazy_fields_read_by_many_threads_at_once_agree() -> None:
    """No lock guards a lazy field: threads that fill it at the same moment all get the same value."""
    issued = make_certificate(
        "threads.contoso.lab",
        not_before=NOW,
        not_after=NOW.replace(year=2029),
        key=ec.generate_private_key(ec.SECP256R1()),
        dns_names=("threads.contoso.lab", "alias.contoso.lab"),
    )
    record = certificate_from_der(issued.der)
    barrier = threading.Barrier(8)
    seen: list[tuple[object, ...]] = []

    def read() -> None:
        barrier.wait(timeout=30)
        seen.append((record.subject_cn, record.dns_names, record.serial, record.key_algorithm, record.not_before))

    threads = [threading.Thread(target=read) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    expected = (
        "threads.contoso.lab",
        ("threads.contoso.lab", "alias.contoso.lab"),
        serial if len(serial := format(issued.cert.serial_number, "X")) % 2 == 0 else "0" + serial,
        "EC secp256r1",
        NOW,
    )
    assert seen == [expected] * 8
