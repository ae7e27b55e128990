"""Certificates for the lab and the tests, made with cryptography."""

from __future__ import annotations

import ipaddress
import threading
from dataclasses import dataclass
from datetime import datetime, timedelta

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from cryptography.hazmat.primitives.asymmetric.types import CertificateIssuerPrivateKeyTypes
from cryptography.hazmat.primitives.serialization import pkcs12
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

PrivateKey = rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey | ed25519.Ed25519PrivateKey

_KEYS: dict[str, PrivateKey] = {}
_KEYS_LOCK = threading.Lock()


def rsa_key(name: str, bits: int = 2048) -> rsa.RSAPrivateKey:
    """An RSA key, generated once per name per process (key generation dominates lab build time)."""
    with _KEYS_LOCK:
        key = _KEYS.get(f"rsa{bits}:{name}")
        if key is None:
            key = rsa.generate_private_key(public_exponent=65537, key_size=bits)
            _KEYS[f"rsa{bits}:{name}"] = key
    assert isinstance(key, rsa.RSAPrivateKey)
    return key


@dataclass(frozen=True)
class Issued:
    """A certificate with its private key."""

    cert: x509.Certificate
    key: PrivateKey

    @property
    def der(self) -> bytes:
        """DER encoding."""
        return self.cert.public_bytes(serialization.Encoding.DER)

    @property
    def pem(self) -> bytes:
        """PEM encoding of the certificate."""
        return self.cert.public_bytes(serialization.Encoding.PEM)

    @property
    def key_pem(self) -> bytes:
        """Unencrypted PKCS#8 PEM of the key."""
        return self.key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )

    @property
    def thumbprint(self) -> str:
        """SHA-1 of the DER, upper-case hex."""
        return self.cert.fingerprint(hashes.SHA1()).hex().upper()  # noqa: S303 - Windows thumbprint


def make_certificate(
    common_name: str | None,
    *,
    not_before: datetime,
    not_after: datetime,
    key: PrivateKey | None = None,
    issuer: Issued | None = None,
    dns_names: tuple[str, ...] = (),
    ip_addresses: tuple[str, ...] = (),
    is_ca: bool = False,
    server: bool = True,
    client: bool = True,
    extra_subject: tuple[tuple[x509.ObjectIdentifier, str], ...] = (),
    serial: int | None = None,
) -> Issued:
    """Issue a certificate (self-signed when no issuer is given)."""
    key = key or rsa_key(common_name or "anonymous")
    attributes = [x509.NameAttribute(oid, value) for oid, value in extra_subject]
    if common_name is not None:
        attributes.append(x509.NameAttribute(NameOID.COMMON_NAME, common_name))
    subject = x509.Name(attributes)
    signer_key: CertificateIssuerPrivateKeyTypes = issuer.key if issuer else key
    builder = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(issuer.cert.subject if issuer else subject)
        .public_key(key.public_key())
        .serial_number(serial or x509.random_serial_number())
        .not_valid_before(not_before)
        .not_valid_after(not_after)
        .add_extension(x509.BasicConstraints(ca=is_ca, path_length=None), critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
    )
    if issuer is not None:
        builder = builder.add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(issuer.key.public_key()), critical=False
        )
    names: list[x509.GeneralName] = [x509.DNSName(d) for d in dns_names]
    names += [x509.IPAddress(ipaddress.ip_address(a)) for a in ip_addresses]
    if names:
        builder = builder.add_extension(x509.SubjectAlternativeName(names), critical=False)
    if is_ca:
        builder = builder.add_extension(
            x509.KeyUsage(False, False, False, False, False, True, True, False, False), critical=True
        )
    else:
        builder = builder.add_extension(
            x509.KeyUsage(True, False, True, True, False, False, False, False, False), critical=True
        )
        usages = []
        if server:
            usages.append(ExtendedKeyUsageOID.SERVER_AUTH)
        if client:
            usages.append(ExtendedKeyUsageOID.CLIENT_AUTH)
        if usages:
            builder = builder.add_extension(x509.ExtendedKeyUsage(usages), critical=False)
    algorithm = None if isinstance(signer_key, ed25519.Ed25519PrivateKey) else hashes.SHA256()
    return Issued(builder.sign(signer_key, algorithm), key)


def pfx_bytes(issued: Issued, password: bytes, *, legacy: bool = True, chain: tuple[Issued, ...] = ()) -> bytes:
    """A PKCS#12 file; legacy = 3DES/RC2-style PBES1 as Windows exports by default, else AES-256."""
    if legacy:
        encryption = (
            serialization.PrivateFormat.PKCS12.encryption_builder()
            .kdf_rounds(2048)
            .key_cert_algorithm(pkcs12.PBES.PBESv1SHA1And3KeyTripleDESCBC)
            .hmac_hash(hashes.SHA1())  # noqa: S303 - what Windows exports
            .build(password)
        )
    else:
        encryption = (
            serialization.PrivateFormat.PKCS12.encryption_builder()
            .kdf_rounds(10000)
            .key_cert_algorithm(pkcs12.PBES.PBESv2SHA256AndAES256CBC)
            .hmac_hash(hashes.SHA256())
            .build(password)
        )
    name = issued.cert.subject.rfc4514_string().encode() or b"certificate"
    return pkcs12.serialize_key_and_certificates(
        name, issued.key, issued.cert, [c.cert for c in chain] or None, encryption
    )


def days(now: datetime, count: float) -> datetime:
    """now + count days."""
    return now + timedelta(days=count)
