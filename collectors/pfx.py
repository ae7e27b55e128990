"""PKCS#12 (PFX) files opened for their certificates: no private key is validated.

cryptography's `load_pkcs12` checks every RSA private key it opens (tens of milliseconds per
file); certmon needs only the certificates and whether a key came with them. So:

1. the file's MAC (RFC 7292 section 5: HMAC keyed by the PKCS#12 key derivation of appendix
   B) proves the password, as it does for every PKCS#12 reader;
2. the key bags are taken out of the unencrypted containers that hold them (where Windows
   and OpenSSL put the shrouded key), and what is left, the certificate containers,
   encrypted or not, is opened by cryptography with every cipher it supports (legacy RC2-40
   and 3DES, AES): no key to validate and, the MAC checked already, none to check again;
3. the certificate a key belongs to is found by its public key: the key is decrypted without
   RSA validation (`unsafe_skip_rsa_key_validation`; certmon never uses it) and compared.

Files this cannot take apart that way (no MAC, a MAC other than HMAC, key bags inside
encrypted containers, a key cryptography cannot read) are opened whole by `load_pkcs12`.
"""

from __future__ import annotations

import hashlib
import hmac
from dataclasses import dataclass

from asn1crypto import cms
from asn1crypto import pkcs12 as asn1_pkcs12
from cryptography import x509
from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat, load_der_private_key, pkcs12

KEY_BAGS = ("key_bag", "pkcs8_shrouded_key_bag")
# More iterations than this in a file's MAC is a file built to burn CPU (Windows uses 2,000,
# OpenSSL 2,048, modern exports up to 10,000 or so).
MAX_MAC_ITERATIONS = 1_000_000
_HASHES = {"sha1": "sha1", "sha224": "sha224", "sha256": "sha256", "sha384": "sha384", "sha512": "sha512"}


class NotSplittable(Exception):
    """The file needs the whole-file load (see the module docstring)."""


class WrongPassword(Exception):
    """The MAC does not match: the password is wrong."""


@dataclass(frozen=True)
class PfxCertificates:
    """The certificates of a PKCS#12 file, each with whether the file holds its private key."""

    certificates: tuple[tuple[x509.Certificate, bool], ...]


def _bmp_password(password: bytes | None) -> bytes:
    """The password as PKCS#12 key derivation takes it: UTF-16BE plus two zero bytes; None is empty."""
    if password is None:
        return b""
    return password.decode("utf-8").encode("utf-16-be") + b"\0\0"


def pkcs12_kdf(hash_name: str, password: bytes, salt: bytes, *, purpose: int, iterations: int, size: int) -> bytes:
    """RFC 7292 appendix B.2 key derivation (purpose 1: key, 2: IV, 3: MAC key)."""
    u = hashlib.new(hash_name).digest_size
    v = hashlib.new(hash_name).block_size
    diversifier = bytes([purpose]) * v

    def stretch(data: bytes) -> bytes:
        # Concatenated copies of the data, cut to the next multiple of the block size.
        if not data:
            return b""
        length = v * -(-len(data) // v)
        return (data * (length // len(data) + 1))[:length]

    block = bytearray(stretch(salt) + stretch(password))
    out = b""
    while len(out) < size:
        digest = hashlib.new(hash_name, diversifier + bytes(block)).digest()
        for _ in range(iterations - 1):
            digest = hashlib.new(hash_name, digest).digest()
        out += digest
        if len(out) >= size:
            break
        increment = int.from_bytes((digest * (v // u + 1))[:v], "big") + 1
        for start in range(0, len(block), v):
            value = (int.from_bytes(block[start : start + v], "big") + increment) % (1 << (8 * v))
            block[start : start + v] = value.to_bytes(v, "big")
    return out[:size]


def _check_mac(pfx: asn1_pkcs12.Pfx, content: bytes, password: bytes | None) -> None:
    mac_data = pfx["mac_data"]
    if not mac_data.native:
        raise NotSplittable("no MAC")
    algorithm = mac_data["mac"]["digest_algorithm"]["algorithm"].native
    hash_name = _HASHES.get(algorithm)
    if hash_name is None:
        raise NotSplittable(f"MAC algorithm {algorithm}")
    iterations = mac_data["iterations"].native or 1
    if iterations > MAX_MAC_ITERATIONS:
        raise ValueError(f"the MAC asks for {iterations} iterations, more than {MAX_MAC_ITERATIONS}")
    size = hashlib.new(hash_name).digest_size
    salt = mac_data["mac_salt"].native
    key = pkcs12_kdf(hash_name, _bmp_password(password), salt, purpose=3, iterations=iterations, size=size)
    expected = mac_data["mac"]["digest"].native
    if not hmac.compare_digest(hmac.new(key, content, hash_name).digest(), expected):
        raise WrongPassword


def _public(der_key: bytes, password: bytes | None) -> bytes:
    key = load_der_private_key(der_key, password, unsafe_skip_rsa_key_validation=True)
    return key.public_key().public_bytes(Encoding.DER, PublicFormat.SubjectPublicKeyInfo)


def _cert_public(cert: x509.Certificate) -> bytes | None:
    try:
        return cert.public_key().public_bytes(Encoding.DER, PublicFormat.SubjectPublicKeyInfo)
    except (ValueError, UnsupportedAlgorithm):
        return None


def _data(content: bytes) -> cms.ContentInfo:
    return cms.ContentInfo({"content_type": "data", "content": content})


def split_pkcs12(data: bytes, password: bytes | None) -> PfxCertificates:
    """The certificates of a PKCS#12 file without validating its key.

    Raises WrongPassword, NotSplittable (use load_pkcs12 instead), or ValueError for a malformed file.
    """
    pfx = asn1_pkcs12.Pfx.load(data, strict=False)
    if pfx["auth_safe"]["content_type"].native != "data":
        raise NotSplittable("public-key integrity mode")
    content = pfx["auth_safe"]["content"].native
    _check_mac(pfx, content, password)
    kept: list[cms.ContentInfo] = []
    keys: list[tuple[bytes, bool]] = []
    for info in asn1_pkcs12.AuthenticatedSafe.load(content):
        if info["content_type"].native == "data":
            bags = asn1_pkcs12.SafeContents.load(info["content"].native)
            others = [bag for bag in bags if bag["bag_id"].native not in KEY_BAGS]
            keys.extend(
                (bag["bag_value"].untag().dump(), bag["bag_id"].native == "pkcs8_shrouded_key_bag")
                for bag in bags
                if bag["bag_id"].native in KEY_BAGS
            )
            if others:
                kept.append(_data(asn1_pkcs12.SafeContents(others).dump()))
        else:
            kept.append(info)
    stripped = asn1_pkcs12.Pfx({"version": "v3", "auth_safe": _data(asn1_pkcs12.AuthenticatedSafe(kept).dump())}).dump()
    bundle = pkcs12.load_pkcs12(stripped, password)
    if bundle.key is not None:
        raise NotSplittable("a key inside an encrypted container")
    certs = [item.certificate for item in ([bundle.cert] if bundle.cert else []) + list(bundle.additional_certs)]
    try:
        key_publics = {_public(key, password if shrouded else None) for key, shrouded in keys}
    except (ValueError, TypeError, UnsupportedAlgorithm) as err:
        raise NotSplittable(f"key not readable: {err}") from err
    marked = [(cert, _cert_public(cert) in key_publics) for cert in certs]
    # The certificate with the key first, as load_pkcs12 returns it; then the others in file order.
    marked.sort(key=lambda item: not item[1])
    return PfxCertificates(tuple(marked))
