"""The client certificate certmon presents to the gateway, loaded from PFX or PEM and kept in memory.

The private key never touches the disk: the stdlib and `requests` can only load a client key from
a file, so a PFX would have to be unpacked into a temporary PEM; pyOpenSSL takes the key object.
Identities are cached by file content and password digest, like the PKCS#12 results of
`collectors.certificate`, because the same files are read every cycle.
"""

from __future__ import annotations

import hashlib
import threading
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat, load_pem_private_key

from collectors.certfiles import open_pkcs12
from collectors.certificate import Certificate, certificate_from_x509
from collectors.errors import CollectorError, Reason
from collectors.files import read_bytes

PrivateKey = rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey


@dataclass(frozen=True, slots=True)
class CertificateFile:
    """Where a client certificate lives: a PFX, or a PEM certificate with its key (same or separate file)."""

    path: Path
    key_path: Path | None = None
    password: bytes | None = None

    @property
    def label(self) -> str:
        """The file name, for messages."""
        return str(self.path)


@dataclass(frozen=True, eq=False)
class ClientIdentity:
    """A client certificate with its private key and the chain certificates that came with it."""

    certificate: Certificate
    key: PrivateKey
    chain: tuple[x509.Certificate, ...]
    source: str

    @property
    def thumbprint(self) -> str:
        """The certificate's Windows thumbprint."""
        return self.certificate.thumbprint


_CACHE: dict[bytes, ClientIdentity] = {}
_LOCK = threading.Lock()


def _spki(key: PrivateKey | x509.Certificate) -> bytes:
    public = key.public_key()
    return public.public_bytes(Encoding.DER, PublicFormat.SubjectPublicKeyInfo)


def _from_pkcs12(data: bytes, password: bytes | None, source: str) -> ClientIdentity:
    bundle = open_pkcs12(data, password, source)
    if bundle.key is None:
        raise CollectorError(source, Reason.CONFIG_ERROR, "the PKCS#12 file holds no private key")
    if bundle.cert is None:
        raise CollectorError(source, Reason.CONFIG_ERROR, "the PKCS#12 file holds no certificate")
    key = bundle.key
    if not isinstance(key, rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey):
        raise CollectorError(source, Reason.CONFIG_ERROR, f"unsupported client key type {type(key).__name__}")
    cert = bundle.cert.certificate
    chain = tuple(c.certificate for c in bundle.additional_certs)
    return ClientIdentity(certificate_from_x509(cert, source), key, chain, source)


def _from_pem(data: bytes, key_data: bytes, password: bytes | None, source: str) -> ClientIdentity:
    try:
        certs = x509.load_pem_x509_certificates(data)
    except (ValueError, x509.InvalidVersion) as err:
        raise CollectorError(source, Reason.PARSE_ERROR, f"no PEM certificate: {err}") from err
    try:
        key = load_pem_private_key(key_data, password)
    except TypeError as err:
        reason = Reason.WRONG_PASSWORD
        raise CollectorError(source, reason, "the private key is encrypted; configure its password") from err
    except ValueError as err:
        if b"ENCRYPTED" in key_data:
            raise CollectorError(source, Reason.WRONG_PASSWORD, "wrong password for the private key") from err
        raise CollectorError(source, Reason.CONFIG_ERROR, "no usable PEM private key") from err
    if not isinstance(key, rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey):
        raise CollectorError(source, Reason.CONFIG_ERROR, f"unsupported client key type {type(key).__name__}")
    wanted = _spki(key)
    leaf = next((c for c in certs if _spki(c) == wanted), None)
    if leaf is None:
        raise CollectorError(source, Reason.CONFIG_ERROR, "no certificate in the file matches the private key")
    chain = tuple(c for c in certs if c is not leaf)
    return ClientIdentity(certificate_from_x509(leaf, source), key, chain, source)


def load_identity(spec: CertificateFile) -> ClientIdentity:
    """The client identity of a PFX or PEM file; CollectorError naming the file and why it is unusable."""
    source = spec.label
    data = read_bytes(spec.path)
    key_data = read_bytes(spec.key_path) if spec.key_path is not None else data
    digest = hashlib.sha256(hashlib.sha256(spec.password or b"").digest() + data + b"\0" + key_data).digest()
    with _LOCK:
        cached = _CACHE.get(digest)
    if cached is not None:
        return cached
    if b"-----BEGIN" in data:
        if b"PRIVATE KEY-----" not in key_data:
            raise CollectorError(source, Reason.CONFIG_ERROR, "the PEM file holds no private key; set key_path")
        identity = _from_pem(data, key_data, spec.password, source)
    else:
        identity = _from_pkcs12(data, spec.password, source)
    with _LOCK:
        if len(_CACHE) > 64:
            _CACHE.clear()
        _CACHE[digest] = identity
    return identity
