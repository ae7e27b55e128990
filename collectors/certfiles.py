"""Certificate files and blobs: PEM (with keys), DER, base64, PKCS#7 and PKCS#12/PFX."""

from __future__ import annotations

import base64
import binascii
import hashlib
import re
from pathlib import Path

from asn1crypto import pkcs12 as asn1_pkcs12
from cryptography import x509
from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives.serialization import (
    Encoding,
    PublicFormat,
    load_pem_private_key,
    pkcs7,
    pkcs12,
)

from collectors.certificate import (
    _CACHE_LOCK,
    Certificate,
    LoadedCertificate,
    certificate_from_der,
    certificate_from_x509,
)
from collectors.errors import CertificateError, Reason, file_error
from collectors.pfx import NotSplittable, WrongPassword, split_pkcs12


def _looks_like_pkcs12(data: bytes) -> bool:
    try:
        pfx = asn1_pkcs12.Pfx.load(data, strict=False)
        return bool(pfx["version"].native == "v3" and pfx["auth_safe"]["content_type"].native)
    except (ValueError, TypeError, KeyError):
        return False


# Opening a PKCS#12 file costs tens of milliseconds of key derivation; the same files are
# read every cycle, so results are kept by a digest of (password, content), never the password.
_PKCS12_CACHE: dict[bytes, tuple[tuple[Certificate, bool], ...]] = {}


def _load_pkcs12(data: bytes, password: bytes | None, source: str) -> list[LoadedCertificate]:
    key = hashlib.sha256(hashlib.sha256(password or b"").digest() + data).digest()
    cached = _PKCS12_CACHE.get(key)
    if cached is None:
        cached = tuple((item.certificate, bool(item.has_private_key)) for item in _open_pkcs12(data, password, source))
        with _CACHE_LOCK:
            if len(_PKCS12_CACHE) >= 10_000:
                _PKCS12_CACHE.clear()
            _PKCS12_CACHE[key] = cached
    return [LoadedCertificate(cert, has_key, source) for cert, has_key in cached]


def open_pkcs12(data: bytes, password: bytes | None, source: str) -> pkcs12.PKCS12KeyAndCertificates:
    """Decrypt a PKCS#12 file (no password: try none and the empty one); CertificateError otherwise."""
    attempts: list[bytes | None] = [password] if password else [None, b""]
    for attempt in attempts:
        try:
            return pkcs12.load_pkcs12(data, attempt)
        except ValueError:
            continue
        except x509.InvalidVersion as err:
            raise CertificateError(source, Reason.PARSE_ERROR, f"PKCS#12 holds a malformed certificate: {err}") from err
        except UnsupportedAlgorithm as err:
            raise CertificateError(source, Reason.PARSE_ERROR, f"PKCS#12 uses an unsupported algorithm: {err}") from err
    if password:
        raise CertificateError(source, Reason.WRONG_PASSWORD, "wrong password for PKCS#12 file")
    raise CertificateError(source, Reason.WRONG_PASSWORD, "PKCS#12 file is password protected; no password given")


def _open_pkcs12(data: bytes, password: bytes | None, source: str) -> list[LoadedCertificate]:
    attempts: list[bytes | None] = [password] if password else [None, b""]
    wrong = 0
    for attempt in attempts:
        try:
            split = split_pkcs12(data, attempt)
        except WrongPassword:
            wrong += 1
            continue
        except (NotSplittable, ValueError, TypeError, KeyError, x509.InvalidVersion, UnsupportedAlgorithm):
            break  # the whole-file load below decides, and words any error
        opened = [LoadedCertificate(certificate_from_x509(c, source), key, source) for c, key in split.certificates]
        if not opened:
            raise CertificateError(source, Reason.PARSE_ERROR, "PKCS#12 file holds no certificate")
        return opened
    if wrong == len(attempts):
        if password:
            raise CertificateError(source, Reason.WRONG_PASSWORD, "wrong password for PKCS#12 file")
        raise CertificateError(source, Reason.WRONG_PASSWORD, "PKCS#12 file is password protected; no password given")
    bundle = open_pkcs12(data, password, source)
    found: list[LoadedCertificate] = []
    if bundle.cert is not None:
        found.append(
            LoadedCertificate(
                certificate_from_x509(bundle.cert.certificate, source),
                bundle.key is not None,
                source,
            )
        )
    for extra in bundle.additional_certs:
        found.append(LoadedCertificate(certificate_from_x509(extra.certificate, source), False, source))
    if not found:
        raise CertificateError(source, Reason.PARSE_ERROR, "PKCS#12 file holds no certificate")
    return found


def _load_pem(data: bytes, password: bytes | None, source: str) -> list[LoadedCertificate]:
    certs: list[x509.Certificate] = []
    if b"-----BEGIN PKCS7-----" in data:
        try:
            certs.extend(pkcs7.load_pem_pkcs7_certificates(data))
        except (ValueError, x509.InvalidVersion, UnsupportedAlgorithm) as err:
            raise CertificateError(source, Reason.PARSE_ERROR, f"malformed PKCS#7: {err}") from err
    if b"CERTIFICATE-----" in data:
        try:
            certs.extend(x509.load_pem_x509_certificates(data))
        except (ValueError, x509.InvalidVersion) as err:
            raise CertificateError(source, Reason.PARSE_ERROR, f"malformed PEM certificate: {err}") from err
    if not certs:
        raise CertificateError(source, Reason.PARSE_ERROR, "PEM file holds no certificate")
    key_public = _pem_private_key_public_bytes(data, password)
    loaded = []
    for cert in certs:
        has_key: bool | None = False
        if key_public is not None:
            has_key = key_public == b"" or key_public == _public_bytes(cert)
        loaded.append(LoadedCertificate(certificate_from_x509(cert, source), has_key, source))
    return loaded


def _public_bytes(cert: x509.Certificate) -> bytes | None:
    try:
        return cert.public_key().public_bytes(Encoding.DER, PublicFormat.SubjectPublicKeyInfo)
    except (ValueError, UnsupportedAlgorithm):
        return None  # a key cryptography cannot read matches no private key


def _pem_private_key_public_bytes(data: bytes, password: bytes | None) -> bytes | None:
    """The SPKI of the PEM's private key; b'' when one is present but cannot be opened."""

    match = re.search(rb"-----BEGIN ([A-Z ]*)PRIVATE KEY-----.*?-----END \1PRIVATE KEY-----", data, re.S)
    if match is None:
        return None
    try:
        key = load_pem_private_key(match.group(0), password)
    except (ValueError, TypeError, UnsupportedAlgorithm):
        return b""
    return key.public_key().public_bytes(Encoding.DER, PublicFormat.SubjectPublicKeyInfo)


_BASE64_TEXT = re.compile(rb"[A-Za-z0-9+/=\s]+")


def load_certificates(data: bytes, source: str, password: bytes | None = None) -> list[LoadedCertificate]:
    """Every certificate in a PEM, DER, PKCS#7 or PKCS#12 blob; raises CertificateError."""
    if not data.strip():
        raise CertificateError(source, Reason.PARSE_ERROR, "empty file")
    if b"-----BEGIN" in data:
        return _load_pem(data, password, source)
    if data[:1] != b"\x30" and _BASE64_TEXT.fullmatch(data):
        try:
            data = base64.b64decode(b"".join(data.split()), validate=True)
        except (binascii.Error, ValueError) as err:
            raise CertificateError(source, Reason.PARSE_ERROR, "not a certificate (invalid base64 text)") from err
    if data[:1] != b"\x30":
        raise CertificateError(
            source, Reason.PARSE_ERROR, "not a certificate (no PEM, DER, PKCS#7 or PKCS#12 content found)"
        )
    try:
        return [LoadedCertificate(certificate_from_der(data, source), False, source)]
    except CertificateError as der_error:
        if _looks_like_pkcs12(data):
            return _load_pkcs12(data, password, source)
        try:
            bundle = pkcs7.load_der_pkcs7_certificates(data)
        except (ValueError, x509.InvalidVersion, UnsupportedAlgorithm):  # PKCS#7 other than signedData
            raise der_error from None
        return [LoadedCertificate(certificate_from_x509(c, source), False, source) for c in bundle]


def load_certificate_file(path: str | Path, password: bytes | None = None) -> list[LoadedCertificate]:
    """Every certificate in a file; raises CertificateError naming the file."""
    name = str(path)
    try:
        # open(), not Path(path): building a Path interns every part of it, and a daemon that
        # reads hundreds of files per cycle would churn CPython's interned-string table, whose
        # periodic resizes fragment the heap (the soak's RSS grew ~15 KiB per cycle).
        with open(path, "rb") as file:
            data = file.read()
    except OSError as err:
        failure = file_error(name, err)
        raise CertificateError(name, failure.reason, failure.message) from err
    return load_certificates(data, name, password)
