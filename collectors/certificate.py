"""The certificate model: one parsed record per X.509 certificate, from PEM, DER, PKCS#7 or PFX."""

from __future__ import annotations

import hashlib
import re
import sys
import threading
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
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


def _key_field(index: int) -> Callable[[Certificate], Any]:
    return lambda c: _key_facts(c.parsed)[index]


def _throwaway(cert: Certificate) -> x509.Certificate:
    """A parse of the DER that is dropped after use.

    cryptography keeps every Name it hands out on the certificate object; reading the subject
    and issuer of the kept `parsed` object pinned about 1.5 KiB of Python objects per certificate
    (75 MiB at 50,000 certificates in one store), for strings the record keeps anyway.
    """
    return x509.load_der_x509_certificate(cert.der)


# How each lazy field of a Certificate is computed, on first use.
_LAZY: dict[str, Callable[[Certificate], Any]] = {
    # The cryptography object, for signature and chain checks; the DER parsed once already.
    "parsed": lambda c: x509.load_der_x509_certificate(c.der),
    "not_after_ts": lambda c: c.not_after.timestamp(),
    "sha256": lambda c: hashlib.sha256(c.der).hexdigest().upper(),
    # Names from a throwaway parse: see _throwaway.
    "subject": lambda c: _name_text(_throwaway(c), "subject"),
    "issuer": lambda c: _name_text(_throwaway(c), "issuer"),
    "dns_names": lambda c: tuple(_sans(c.parsed, x509.DNSName)),
    "ip_addresses": lambda c: tuple(str(ip) for ip in _sans(c.parsed, x509.IPAddress)),
    "key_algorithm": _key_field(0),
    "key_size": _key_field(1),
    "signature_algorithm": lambda c: _oid_name(c.parsed.signature_algorithm_oid),
    "self_signed": lambda c: _self_signed(c.parsed),
    "key_usage": lambda c: _key_usage(c.parsed),
    "extended_key_usage": lambda c: _extended_key_usage(c.parsed),
    "problems": lambda c: tuple(_extension_problem(c.parsed)),
}
# The fields every evaluation reads of every certificate (expiry rules, metric labels, the
# Credentials.json recipient index), filled together from one parse that is then dropped. Kept
# `parsed` objects (with the extensions cryptography caches on them) cost about 0.9 KiB per
# certificate: 45 MiB at 50,000 certificates in one store, for a few short strings and a date.
_FROM_ONE_PARSE: dict[str, Callable[[x509.Certificate], Any]] = {
    "not_before": lambda p: p.not_valid_before_utc,
    "subject_cn": lambda p: _common_name(p, "subject"),
    # A handful of issuers sign thousands of certificates: one string each, not one per certificate.
    "issuer_cn": lambda p: sys.intern(_common_name(p, "issuer")),
    "serial": lambda p: _serial_hex(p.serial_number),
    "subject_key_identifier": lambda p: _subject_key_identifier(p),  # noqa: PLW0108 - defined further down
}
_LAZY_NAMES = (*_LAZY, *_FROM_ONE_PARSE)


class Certificate:
    """What a certificate says about itself; identical wherever the same DER is found.

    The thumbprint (the SHA-1 that found the record in the cache anyway) and `not_after` (which
    every evaluation reads) are set when the record is made, from a parse that also proves the
    DER is a certificate. Every other field, and the cryptography object itself (`parsed`), is
    read on first use and then kept in its slot: a cycle sees thousands of certificates, most
    fields are only needed by `inspect` and a few findings, and a record that keeps only its
    DER until then is smaller and faster to make. The few fields every evaluation reads of
    every certificate (`not_before`, `subject_cn`, `issuer_cn`, `serial`,
    `subject_key_identifier`) are filled together from one parse that is not kept.

    Lazy fields are plain slots filled by `__getattr__`, which Python calls only while a slot
    is still empty; later reads are ordinary attribute reads, with no lock (unlike
    functools.cached_property on Python 3.11). Two threads filling the same field at once both
    compute the same value, which is harmless.

    Fields: `not_before`, `not_after` (UTC datetimes), `not_after_ts` (Unix time), `sha256`,
    `subject`, `issuer` (RFC 4514), `subject_cn`, `issuer_cn`, `dns_names`, `ip_addresses`,
    `serial` (upper-case hex of even length), `key_algorithm`, `key_size`, `signature_algorithm`,
    `self_signed` (subject equals issuer and the certificate's own key verifies its signature),
    `key_usage`, `extended_key_usage`, `subject_key_identifier` and `problems` (parts of the
    certificate that could not be read, e.g. a malformed extension).
    """

    __slots__ = ("_der", "not_after", "thumbprint", *_LAZY_NAMES)

    parsed: x509.Certificate
    not_before: datetime
    not_after: datetime
    not_after_ts: float
    sha256: str
    subject: str
    issuer: str
    subject_cn: str
    issuer_cn: str
    dns_names: tuple[str, ...]
    ip_addresses: tuple[str, ...]
    serial: str
    key_algorithm: str
    key_size: int
    signature_algorithm: str
    self_signed: bool
    key_usage: tuple[str, ...]
    extended_key_usage: tuple[str, ...]
    subject_key_identifier: str
    problems: tuple[str, ...]

    def __init__(self, der: bytes, thumbprint: str, not_after: datetime) -> None:
        self._der = der
        self.thumbprint = thumbprint
        self.not_after = not_after

    def __getattr__(self, name: str) -> Any:
        compute = _LAZY.get(name)
        if compute is None:
            if name in _FROM_ONE_PARSE:
                return self._fill_from_one_parse(name)
            raise AttributeError(f"{type(self).__name__!r} object has no attribute {name!r}")
        value = compute(self)
        setattr(self, name, value)
        return value

    def _fill_from_one_parse(self, wanted: str) -> Any:
        """Fill the empty slots of _FROM_ONE_PARSE from one parse (the kept one if any); return `wanted`."""
        try:
            parsed = object.__getattribute__(self, "parsed")
        except AttributeError:
            parsed = _throwaway(self)
        for name, compute in _FROM_ONE_PARSE.items():
            if name == wanted:
                continue
            try:
                object.__getattribute__(self, name)
            except AttributeError:
                try:
                    setattr(self, name, compute(parsed))
                except Exception:  # noqa: BLE001, S112 - left empty: raised again when that field is read
                    continue
        value = _FROM_ONE_PARSE[wanted](parsed)
        setattr(self, wanted, value)
        return value

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

    def days_left(self, now: datetime) -> float:
        """Days until expiry (negative once expired)."""
        return (self.not_after - now).total_seconds() / 86400.0


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
_CACHE: dict[str, Certificate] = {}
_CACHE_LIMIT = 100_000
_CACHE_LOCK = threading.Lock()
_cached = _CACHE.get
# A fresh SHA-1 copied from an empty one: skips looking the algorithm up in OpenSSL for every certificate.
_new_sha1 = hashlib.sha1(usedforsecurity=False).copy
_load_der = x509.load_der_x509_certificate


def certificate_from_der(der: bytes, source: str = "<certificate>") -> Certificate:
    """Parse one DER certificate into the model; raises CertificateError naming the source."""
    digest = _new_sha1()
    digest.update(der)
    thumbprint = digest.hexdigest().upper()
    cached = _cached(thumbprint)
    if cached is not None:
        return cached
    try:
        not_after = _load_der(der).not_valid_after_utc
    except (ValueError, x509.InvalidVersion) as err:  # InvalidVersion is no ValueError
        raise CertificateError(source, Reason.PARSE_ERROR, _der_problem(der, err)) from err
    record = Certificate(der if type(der) is bytes else bytes(der), thumbprint, not_after)
    if len(_CACHE) >= _CACHE_LIMIT:
        with _CACHE_LOCK:
            if len(_CACHE) >= _CACHE_LIMIT:
                _CACHE.clear()
    # One dict store is atomic under the GIL: readers see the record or nothing.
    _CACHE[thumbprint] = record
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
