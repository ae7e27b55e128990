"""Chain validation of a presented TLS chain against a CA bundle, done by us rather than by the handshake.

The handshake runs with verification off so that an expired, self-signed, untrusted or wrong-name
certificate is still read and reported; the chain is then judged here with cryptography's X.509
verifier, at the injected moment `now`, and a failure is classified in the operator's words.
"""

from __future__ import annotations

import ipaddress
import re
import ssl
import threading
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from pathlib import Path

from cryptography import x509
from cryptography.x509 import verification

from collectors.errors import CollectorError, Reason, file_error

MAX_BUNDLE_BYTES = 16 * 1024 * 1024
_PEM_BLOCK = re.compile(rb"-----BEGIN CERTIFICATE-----.+?-----END CERTIFICATE-----", re.S)


class ChainError(StrEnum):
    """Why a presented chain does not validate; `chain_valid` metrics carry it as a label."""

    EXPIRED = "expired"
    NOT_YET_VALID = "not_yet_valid"
    HOSTNAME_MISMATCH = "hostname_mismatch"
    SELF_SIGNED = "self_signed"
    UNTRUSTED = "untrusted"
    INVALID = "invalid"


@dataclass(frozen=True, slots=True)
class ChainVerdict:
    """The outcome of validating one presented chain for one name."""

    valid: bool
    error: ChainError | None = None
    message: str = ""


VALID = ChainVerdict(True)


@dataclass(frozen=True, eq=False)
class TrustStore:
    """CA certificates that anchor validation, and where they came from."""

    store: verification.Store
    origin: str
    count: int
    skipped: int = 0


def _parse_bundle(data: bytes, origin: str) -> TrustStore:
    certs: list[x509.Certificate] = []
    skipped = 0
    blocks = _PEM_BLOCK.findall(data)
    if not blocks and data[:1] == b"\x30":
        blocks = [data]
    for block in blocks:
        try:
            with warnings.catch_warnings():
                # System bundles hold a few old roots that modern parsers frown upon; still usable.
                warnings.simplefilter("ignore")
                certs.append(_load_block(block))
        except (ValueError, x509.InvalidVersion):
            skipped += 1
    if not certs:
        raise CollectorError(origin, Reason.CONFIG_ERROR, "CA bundle holds no usable certificate")
    return TrustStore(verification.Store(certs), origin, len(certs), skipped)


def _load_block(block: bytes) -> x509.Certificate:
    if block[:1] == b"\x30":
        return x509.load_der_x509_certificate(block)
    return x509.load_pem_x509_certificate(block)


def load_bundle(path: Path) -> TrustStore:
    """A PEM (or single DER) CA bundle file; CollectorError naming the file when unusable."""
    name = str(path)
    try:
        with open(path, "rb") as handle:
            data = handle.read(MAX_BUNDLE_BYTES + 1)
    except OSError as err:
        raise file_error(name, err) from err
    if len(data) > MAX_BUNDLE_BYTES:
        raise CollectorError(name, Reason.CONFIG_ERROR, f"CA bundle is larger than {MAX_BUNDLE_BYTES} bytes")
    return _parse_bundle(data, name)


def load_system_trust() -> TrustStore:
    """The operating system's trusted roots (the Windows ROOT store on Windows, OpenSSL's bundle elsewhere)."""
    cafile = ssl.get_default_verify_paths().cafile
    if cafile and Path(cafile).is_file():
        return load_bundle(Path(cafile))
    # On Windows create_default_context() loads the certificate stores; get_ca_certs exposes them.
    ders = ssl.create_default_context().get_ca_certs(binary_form=True)
    if not ders:
        raise CollectorError("system trust store", Reason.CONFIG_ERROR, "no trusted CA found; configure ca_bundle")
    certs = []
    for der in ders:
        try:
            certs.append(x509.load_der_x509_certificate(der))
        except (ValueError, x509.InvalidVersion):
            continue
    return TrustStore(verification.Store(certs), "system trust store", len(certs), len(ders) - len(certs))


class TrustCache:
    """Trust stores loaded once and reloaded when their file changes (operators replace bundles)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._entries: dict[str, tuple[tuple[int, int], TrustStore]] = {}

    def get(self, path: Path | None) -> TrustStore:
        """The trust store of a bundle file, or the system's when path is None."""
        key = str(path) if path is not None else ""
        stamp = (0, 0)
        if path is not None:
            try:
                info = path.stat()
            except OSError as err:
                raise file_error(key, err) from err
            stamp = (info.st_mtime_ns, info.st_size)
        with self._lock:
            cached = self._entries.get(key)
            if cached is not None and cached[0] == stamp:
                return cached[1]
        store = load_bundle(path) if path is not None else load_system_trust()
        with self._lock:
            self._entries[key] = (stamp, store)
        return store


def _policy(trust: TrustStore, now: datetime) -> verification.PolicyBuilder:
    # The Web PKI profile, except that an end-entity certificate may lack an authority key
    # identifier: Go's and OpenSSL's verifiers accept that, and so do AD CS deployments.
    ee = verification.ExtensionPolicy.webpki_defaults_ee().may_be_present(
        x509.AuthorityKeyIdentifier, verification.Criticality.NON_CRITICAL, None
    )
    return (
        verification.PolicyBuilder()
        .store(trust.store)
        .time(now)
        .extension_policies(ca_policy=verification.ExtensionPolicy.webpki_defaults_ca(), ee_policy=ee)
    )


def server_identity(name: str) -> verification.Subject:
    """The subject a server certificate must name: an IP address SAN for addresses, else a DNS SAN."""
    try:
        return x509.IPAddress(ipaddress.ip_address(name.strip("[]")))
    except ValueError:
        return x509.DNSName(name.rstrip(".").lower())


def verify_chain(chain: Sequence[x509.Certificate], name: str, trust: TrustStore, now: datetime) -> ChainVerdict:
    """Validate the presented chain (leaf first) for `name` at `now`; classify the failure."""
    return _verify(chain, name, trust, now)[0]


def _verify(
    chain: Sequence[x509.Certificate], name: str, trust: TrustStore, now: datetime
) -> tuple[ChainVerdict, Sequence[x509.Certificate]]:
    if not chain:
        return ChainVerdict(False, ChainError.INVALID, "the server presented no certificate"), ()
    leaf, rest = chain[0], list(chain[1:])
    try:
        verified = _policy(trust, now).build_server_verifier(server_identity(name)).verify(leaf, rest)
    except verification.VerificationError as err:
        return classify(chain, name, now, str(err)), chain
    return VALID, verified


class ChainJudge:
    """verify_chain with a memory: a verdict on the same chain, name and trust store can only change
    when the clock crosses a notBefore or notAfter of a certificate involved, so it is reused until then."""

    def __init__(self, limit: int = 4096) -> None:
        self._lock = threading.Lock()
        self._limit = limit
        self._verdicts: dict[tuple[tuple[bytes, ...], str, TrustStore], tuple[ChainVerdict, datetime, datetime]] = {}

    def verify(self, chain: Sequence[bytes], name: str, trust: TrustStore, now: datetime) -> ChainVerdict:
        """The verdict on a presented chain (DER, leaf first) for `name` at `now`."""
        key = (tuple(chain), name, trust)
        with self._lock:
            known = self._verdicts.get(key)
        if known is not None and known[1] <= now < known[2]:
            return known[0]
        try:
            parsed = [x509.load_der_x509_certificate(der) for der in chain]
        except (ValueError, x509.InvalidVersion) as err:
            return ChainVerdict(False, ChainError.INVALID, f"a presented certificate cannot be parsed: {err}")
        verdict, involved = _verify(parsed, name, trust, now)
        start, end = _window([*parsed, *involved], now)
        with self._lock:
            if len(self._verdicts) >= self._limit:
                self._verdicts.clear()
            self._verdicts[key] = (verdict, start, end)
        return verdict


def _window(certs: Sequence[x509.Certificate], now: datetime) -> tuple[datetime, datetime]:
    """The interval around now in which no certificate becomes valid or expires."""
    moments = {c.not_valid_before_utc for c in certs} | {c.not_valid_after_utc for c in certs}
    start = max((m for m in moments if m <= now), default=datetime.min.replace(tzinfo=now.tzinfo))
    end = min((m for m in moments if m > now), default=datetime.max.replace(tzinfo=now.tzinfo))
    return start, end


def _label(cert: x509.Certificate) -> str:
    return cert.subject.rfc4514_string() or f"serial {cert.serial_number:X}"


def classify(chain: Sequence[x509.Certificate], name: str, now: datetime, detail: str) -> ChainVerdict:
    """Name the most useful reason a chain failed: dates first, then the name, then trust."""
    leaf = chain[0]
    for cert in chain:
        if cert.not_valid_after_utc < now:
            what = "certificate" if cert is leaf else "chain certificate"
            return ChainVerdict(
                False,
                ChainError.EXPIRED,
                f"{what} {_label(cert)} expired on {cert.not_valid_after_utc:%Y-%m-%d %H:%M}Z",
            )
    if leaf.not_valid_before_utc > now:
        return ChainVerdict(
            False,
            ChainError.NOT_YET_VALID,
            f"certificate {_label(leaf)} is not valid before {leaf.not_valid_before_utc:%Y-%m-%d %H:%M}Z",
        )
    if not matches_name(leaf, name):
        names = ", ".join(presented_names(leaf)) or "no subjectAltName"
        return ChainVerdict(False, ChainError.HOSTNAME_MISMATCH, f"certificate is for {names}, not {name}")
    if leaf.issuer == leaf.subject:
        return ChainVerdict(False, ChainError.SELF_SIGNED, f"self-signed certificate {_label(leaf)} is not trusted")
    if "candidates exhausted" in detail:
        return ChainVerdict(
            False,
            ChainError.UNTRUSTED,
            f"no path from {_label(leaf)} (issued by {leaf.issuer.rfc4514_string()}) to a trusted CA",
        )
    return ChainVerdict(False, ChainError.INVALID, detail.removeprefix("validation failed: "))


def presented_names(cert: x509.Certificate) -> list[str]:
    """DNS and IP subjectAltNames of a certificate."""
    try:
        sans = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except (x509.ExtensionNotFound, ValueError):
        return []
    return [*sans.get_values_for_type(x509.DNSName), *(str(ip) for ip in sans.get_values_for_type(x509.IPAddress))]


def matches_name(cert: x509.Certificate, name: str) -> bool:
    """RFC 6125 matching against the subjectAltNames: a wildcard is a whole left-most label."""
    wanted = name.strip("[]").rstrip(".").lower()
    try:
        address = ipaddress.ip_address(wanted)
    except ValueError:
        address = None
    try:
        sans = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except (x509.ExtensionNotFound, ValueError):
        return False
    if address is not None:
        return address in sans.get_values_for_type(x509.IPAddress)
    for san in sans.get_values_for_type(x509.DNSName):
        pattern = san.rstrip(".").lower()
        if pattern == wanted:
            return True
        if pattern.startswith("*.") and "." in wanted:
            first, _, parent = wanted.partition(".")
            if first and parent == pattern[2:]:
                return True
    return False
