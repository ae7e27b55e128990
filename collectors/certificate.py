"""The certificate model: one parsed record per X.509 certificate, from PEM, DER, PKCS#7 or PFX."""

from __future__ import annotations

import hashlib
import re
import threading
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import cached_property
from typing import Any

from cryptography import x509
from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
from cryptography.hazmat.primitives.asymmetric import dsa, ec, ed448, ed25519, rsa, x448, x25519
from cryptography.hazmat.primitives.serialization import Encoding
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

    def _throwaway(self) -> x509.Certificate:
        """A parse of the DER that is dropped after use.

        cryptography keeps every Name it hands out on the certificate object; reading the
        subject and issuer of the kept object pinned about 1.5 KiB of Python objects per
        certificate (75 MiB at 50,000), for strings that are kept here anyway.
        """
        return x509.load_der_x509_certificate(self._der)

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
        return _name_text(self._throwaway(), "subject")

    @cached_property
    def issuer(self) -> str:
        """Issuer, RFC 4514."""
        return _name_text(self._throwaway(), "issuer")

    @cached_property
    def subject_cn(self) -> str:
        """Subject common name, or ''."""
        return _common_name(self._throwaway(), "subject")

    @cached_property
    def issuer_cn(self) -> str:
        """Issuer common name, or ''."""
        return _common_name(self._throwaway(), "issuer")

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
    except (ValueError, x509.InvalidVersion) as err:  # InvalidVersion is no ValueError
        raise CertificateError(source, Reason.PARSE_ERROR, _der_problem(der, err)) from err
    record = Certificate(bytes(der), digest, parsed)
    with _CACHE_LOCK:
        if len(_CACHE) >= _CACHE_LIMIT:
            _CACHE.clear()
        _CACHE[digest] = record
    return record


def certificate_from_x509(cert: x509.Certificate, source: str = "<certificate>") -> Certificate:
    """Model a certificate already parsed by cryptography."""
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


def newest(certs: Iterable[Certificate]) -> Certificate | None:
    """The certificate that expires last, or None."""
    return max(certs, key=lambda c: c.not_after, default=None)
