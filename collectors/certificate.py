"""The certificate model: one parsed record per X.509 certificate, from PEM, DER, PKCS#7 or PFX."""

from __future__ import annotations

import base64
import binascii
import hashlib
import re
import threading
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import cached_property
from pathlib import Path
from typing import Any

from cryptography import x509
from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
from cryptography.hazmat.primitives.asymmetric import dsa, ec, ed448, ed25519, rsa, x448, x25519
from cryptography.hazmat.primitives.serialization import load_pem_private_key, pkcs7, pkcs12
from cryptography.x509.oid import NameOID

from collectors.errors import CertificateError, Reason, ThumbprintError

# Characters operators paste along with a thumbprint: separators, and the invisible
# bidi marks the Windows certificate dialog puts in front of the value.
_THUMBPRINT_NOISE = re.compile("[\\s:\u200e\u200f\u202a-\u202e\u2066-\u2069\ufeff\u00a0-]")
_HEX40 = re.compile("[0-9A-F]{40}")


def normalize_thumbprint(value: str) -> str:
    """Return the Windows form (40 upper-case hex digits) of a pasted thumbprint, or raise."""
    cleaned = _THUMBPRINT_NOISE.sub("", value).upper()
    if _HEX40.fullmatch(cleaned):
        return cleaned
    shown = value if len(value) <= 80 else value[:77] + "..."
    if not cleaned:
        raise ThumbprintError(f"not a thumbprint: {shown!r} is empty")
    bad = sorted({c for c in cleaned if c not in "0123456789ABCDEF"})
    if bad:
        raise ThumbprintError(f"not a thumbprint: {shown!r} contains {''.join(bad)!r}; expected 40 hexadecimal digits")
    raise ThumbprintError(f"not a thumbprint: {shown!r} has {len(cleaned)} hexadecimal digits, expected 40")


def is_thumbprint(value: str) -> bool:
    """True when the value normalises to a thumbprint."""
    return bool(_HEX40.fullmatch(_THUMBPRINT_NOISE.sub("", value).upper()))


class Certificate:
    """What a certificate says about itself; identical wherever the same DER is found.

    The thumbprint and the validity dates are read when the record is made; the other fields
    are read from the DER on first use and kept, because most of them are only needed for
    `inspect` and a few findings while every cycle sees thousands of certificates.
    """

    __slots__ = ("__dict__", "_der", "_parsed", "thumbprint")

    def __init__(self, der: bytes, digest: bytes, parsed: x509.Certificate) -> None:
        self._der = der
        self._parsed = parsed
        self.thumbprint = digest.hex().upper()

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Certificate) and other.thumbprint == self.thumbprint

    def __hash__(self) -> int:
        return hash(self.thumbprint)

    def __repr__(self) -> str:
        return f"Certificate({self.thumbprint}, subject={self.subject!r})"

    @property
    def der(self) -> bytes:
        """The DER encoding."""
        return self._der

    @property
    def parsed(self) -> x509.Certificate:
        """The cryptography object, for signature and chain checks."""
        return self._parsed

    @cached_property
    def not_before(self) -> datetime:
        """Start of validity, UTC."""
        return self._parsed.not_valid_before_utc

    @cached_property
    def not_after(self) -> datetime:
        """End of validity, UTC."""
        return self._parsed.not_valid_after_utc

    @property
    def not_after_ts(self) -> float:
        """Expiry as a Unix timestamp."""
        return self.not_after.timestamp()

    def days_left(self, now: datetime) -> float:
        """Days until expiry (negative once expired)."""
        return (self.not_after - now).total_seconds() / 86400.0

    @cached_property
    def sha256(self) -> str:
        """SHA-256 fingerprint, upper-case hex."""
        return hashlib.sha256(self._der).hexdigest().upper()

    @cached_property
    def subject(self) -> str:
        """Subject, RFC 4514."""
        return _name_text(self._parsed, "subject")

    @cached_property
    def issuer(self) -> str:
        """Issuer, RFC 4514."""
        return _name_text(self._parsed, "issuer")

    @cached_property
    def subject_cn(self) -> str:
        """Subject common name, or ''."""
        return _common_name(self._parsed, "subject")

    @cached_property
    def issuer_cn(self) -> str:
        """Issuer common name, or ''."""
        return _common_name(self._parsed, "issuer")

    @cached_property
    def dns_names(self) -> tuple[str, ...]:
        """DNS subject alternative names."""
        return tuple(_sans(self._parsed, x509.DNSName))

    @cached_property
    def ip_addresses(self) -> tuple[str, ...]:
        """IP subject alternative names."""
        return tuple(str(ip) for ip in _sans(self._parsed, x509.IPAddress))

    @cached_property
    def serial(self) -> str:
        """Serial number, upper-case hex of even length."""
        return _serial_hex(self._parsed.serial_number)

    @cached_property
    def _key(self) -> tuple[str, int]:
        return _key_facts(self._parsed)

    @property
    def key_algorithm(self) -> str:
        """RSA, EC <curve>, Ed25519..."""
        return self._key[0]

    @property
    def key_size(self) -> int:
        """Key size in bits."""
        return self._key[1]

    @cached_property
    def signature_algorithm(self) -> str:
        """Signature algorithm name, e.g. sha256WithRSAEncryption."""
        return _oid_name(self._parsed.signature_algorithm_oid)

    @cached_property
    def self_signed(self) -> bool:
        """Subject equals issuer and the certificate's own key verifies its signature."""
        return _self_signed(self._parsed)

    @cached_property
    def key_usage(self) -> tuple[str, ...]:
        """Key usage flags."""
        return _key_usage(self._parsed)

    @cached_property
    def extended_key_usage(self) -> tuple[str, ...]:
        """Extended key usages by name (serverAuth...) or dotted OID."""
        return _extended_key_usage(self._parsed)

    @cached_property
    def subject_key_identifier(self) -> str:
        """Subject key identifier, upper-case hex, or ''."""
        return _subject_key_identifier(self._parsed)

    @cached_property
    def problems(self) -> tuple[str, ...]:
        """Parts of the certificate that could not be read (a malformed extension)."""
        return tuple(_extension_problem(self._parsed))


@dataclass(frozen=True, slots=True)
class LoadedCertificate:
    """A certificate as found in one file or blob, with whether its private key came along."""

    certificate: Certificate
    has_private_key: bool | None
    source: str


def to_record(loaded: LoadedCertificate) -> dict[str, Any]:
    """The JSON form used by `certmon inspect` and the status API."""
    c = loaded.certificate
    return {
        "path": loaded.source,
        "thumbprint": c.thumbprint,
        "sha256": c.sha256,
        "subject": c.subject,
        "issuer": c.issuer,
        "subject_cn": c.subject_cn,
        "issuer_cn": c.issuer_cn,
        "dns_names": list(c.dns_names),
        "ip_addresses": list(c.ip_addresses),
        "serial": c.serial,
        "not_before": iso_z(c.not_before),
        "not_after": iso_z(c.not_after),
        "key_algorithm": c.key_algorithm,
        "key_size": c.key_size,
        "signature_algorithm": c.signature_algorithm,
        "self_signed": c.self_signed,
        "key_usage": list(c.key_usage),
        "extended_key_usage": list(c.extended_key_usage),
        "subject_key_identifier": c.subject_key_identifier,
        "has_private_key": loaded.has_private_key,
    }


def iso_z(moment: datetime) -> str:
    """ISO 8601 in UTC with a trailing Z."""
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


# Parsed certificates are interned by their SHA-1: the same DER arrives from every
# node on every cycle, and a certificate's content never changes.
_CACHE: dict[bytes, Certificate] = {}
_CACHE_LIMIT = 100_000
_CACHE_LOCK = threading.Lock()


def certificate_from_der(der: bytes, source: str = "<certificate>") -> Certificate:
    """Parse one DER certificate into the model; raises CertificateError naming the source."""
    digest = hashlib.sha1(der, usedforsecurity=False).digest()
    cached = _CACHE.get(digest)
    if cached is not None:
        return cached
    try:
        parsed = x509.load_der_x509_certificate(der)
    except ValueError as err:
        raise CertificateError(source, Reason.PARSE_ERROR, _der_problem(der, err)) from err
    record = Certificate(bytes(der), digest, parsed)
    with _CACHE_LOCK:
        if len(_CACHE) >= _CACHE_LIMIT:
            _CACHE.clear()
        _CACHE[digest] = record
    return record


def certificate_from_x509(cert: x509.Certificate, source: str = "<certificate>") -> Certificate:
    """Model a certificate already parsed by cryptography."""
    from cryptography.hazmat.primitives.serialization import Encoding

    return certificate_from_der(cert.public_bytes(Encoding.DER), source)


def _extension_problem(cert: x509.Certificate) -> list[str]:
    try:
        cert.extensions  # noqa: B018 - parsing is the check
    except ValueError as err:
        return [f"malformed extension: {err}"]
    return []


def _extensions(cert: x509.Certificate) -> x509.Extensions:
    try:
        return cert.extensions
    except ValueError:
        # Reported through Certificate.problems; the rest of the record stays usable.
        return x509.Extensions([])


def _name_text(cert: x509.Certificate, which: str) -> str:
    try:
        name = cert.subject if which == "subject" else cert.issuer
        return name.rfc4514_string()
    except ValueError as err:
        return f"<malformed {which}: {err}>"


def _common_name(cert: x509.Certificate, which: str) -> str:
    try:
        name = cert.subject if which == "subject" else cert.issuer
    except ValueError:
        return ""
    attrs = name.get_attributes_for_oid(NameOID.COMMON_NAME)
    if not attrs:
        return ""
    value = attrs[0].value
    return value if isinstance(value, str) else value.decode("utf-8", "replace")


def _sans(cert: x509.Certificate, kind: Any) -> tuple[Any, ...]:
    try:
        names = _extensions(cert).get_extension_for_class(x509.SubjectAlternativeName).value
    except x509.ExtensionNotFound:
        return ()
    return tuple(names.get_values_for_type(kind))


def _serial_hex(serial: int) -> str:
    text = format(abs(serial), "X")
    return text if len(text) % 2 == 0 else "0" + text


def _oid_name(oid: x509.ObjectIdentifier) -> str:
    name = getattr(oid, "_name", "")
    return name if name and name != "Unknown OID" else oid.dotted_string


def _key_facts(cert: x509.Certificate) -> tuple[str, int]:
    try:
        key = cert.public_key()
    except (ValueError, UnsupportedAlgorithm):
        return _oid_name(cert.public_key_algorithm_oid), 0
    if isinstance(key, rsa.RSAPublicKey):
        return "RSA", key.key_size
    if isinstance(key, ec.EllipticCurvePublicKey):
        return f"EC {key.curve.name}", key.curve.key_size
    if isinstance(key, ed25519.Ed25519PublicKey):
        return "Ed25519", 256
    if isinstance(key, ed448.Ed448PublicKey):
        return "Ed448", 456
    if isinstance(key, dsa.DSAPublicKey):
        return "DSA", key.key_size
    if isinstance(key, x25519.X25519PublicKey):
        return "X25519", 256
    if isinstance(key, x448.X448PublicKey):
        return "X448", 448
    return _oid_name(cert.public_key_algorithm_oid), 0


def _self_signed(cert: x509.Certificate) -> bool:
    try:
        if cert.subject != cert.issuer:
            return False
    except ValueError:
        return False
    try:
        cert.verify_directly_issued_by(cert)
    except (InvalidSignature, ValueError, TypeError, UnsupportedAlgorithm):
        return False
    return True


_KEY_USAGE_FIELDS = (
    "digital_signature",
    "content_commitment",
    "key_encipherment",
    "data_encipherment",
    "key_agreement",
    "key_cert_sign",
    "crl_sign",
)


def _key_usage(cert: x509.Certificate) -> tuple[str, ...]:
    try:
        usage = _extensions(cert).get_extension_for_class(x509.KeyUsage).value
    except x509.ExtensionNotFound:
        return ()
    names = [field for field in _KEY_USAGE_FIELDS if getattr(usage, field)]
    if usage.key_agreement:
        names += [f for f in ("encipher_only", "decipher_only") if getattr(usage, f)]
    return tuple(names)


def _extended_key_usage(cert: x509.Certificate) -> tuple[str, ...]:
    try:
        usage = _extensions(cert).get_extension_for_class(x509.ExtendedKeyUsage).value
    except x509.ExtensionNotFound:
        return ()
    return tuple(_oid_name(oid) for oid in usage)


def _subject_key_identifier(cert: x509.Certificate) -> str:
    try:
        ski = _extensions(cert).get_extension_for_class(x509.SubjectKeyIdentifier).value
    except x509.ExtensionNotFound:
        return ""
    return ski.digest.hex().upper()


def _der_length(data: bytes) -> int | None:
    """Total length a DER SEQUENCE header announces, or None when there is no usable header."""
    if len(data) < 2 or data[0] != 0x30:
        return None
    first = data[1]
    if first < 0x80:
        return 2 + first
    count = first & 0x7F
    if count == 0 or count > 4 or len(data) < 2 + count:
        return None
    return 2 + count + int.from_bytes(data[2 : 2 + count], "big")


def _der_problem(data: bytes, err: Exception) -> str:
    expected = _der_length(data)
    if expected is not None and expected > len(data):
        return f"truncated: the DER header announces {expected} bytes but only {len(data)} are present"
    if expected is None:
        return "not a certificate (no PEM, DER, PKCS#7 or PKCS#12 content found)"
    return f"malformed certificate: {err}"


def _looks_like_pkcs12(data: bytes) -> bool:
    from asn1crypto import pkcs12 as asn1_pkcs12

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


def _open_pkcs12(data: bytes, password: bytes | None, source: str) -> list[LoadedCertificate]:
    attempts: list[bytes | None] = [password] if password else [None, b""]
    bundle = None
    for attempt in attempts:
        try:
            bundle = pkcs12.load_pkcs12(data, attempt)
            break
        except ValueError:
            continue
        except UnsupportedAlgorithm as err:
            raise CertificateError(source, Reason.PARSE_ERROR, f"PKCS#12 uses an unsupported algorithm: {err}") from err
    if bundle is None:
        if password:
            raise CertificateError(source, Reason.WRONG_PASSWORD, "wrong password for PKCS#12 file")
        raise CertificateError(source, Reason.WRONG_PASSWORD, "PKCS#12 file is password protected; no password given")
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
        except ValueError as err:
            raise CertificateError(source, Reason.PARSE_ERROR, f"malformed PKCS#7: {err}") from err
    if b"CERTIFICATE-----" in data:
        try:
            certs.extend(x509.load_pem_x509_certificates(data))
        except ValueError as err:
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


def _public_bytes(cert: x509.Certificate) -> bytes:
    from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

    return cert.public_key().public_bytes(Encoding.DER, PublicFormat.SubjectPublicKeyInfo)


def _pem_private_key_public_bytes(data: bytes, password: bytes | None) -> bytes | None:
    """The SPKI of the PEM's private key; b'' when one is present but cannot be opened."""
    from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

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
        except ValueError:
            raise der_error from None
        return [LoadedCertificate(certificate_from_x509(c, source), False, source) for c in bundle]


def load_certificate_file(path: str | Path, password: bytes | None = None) -> list[LoadedCertificate]:
    """Every certificate in a file; raises CertificateError naming the file."""
    name = str(path)
    try:
        data = Path(path).read_bytes()
    except OSError as err:
        from collectors.errors import file_error

        raise CertificateError(name, file_error(name, err).reason, file_error(name, err).message) from err
    return load_certificates(data, name, password)


def newest(certs: Iterable[Certificate]) -> Certificate | None:
    """The certificate that expires last, or None."""
    return max(certs, key=lambda c: c.not_after, default=None)
