"""Reading a node's PFX files quickly: the certificate and whether a private key comes with it.

cryptography's load_pkcs12 validates every RSA private key (about 45 ms for 2048 bits), which made a
simulated node's first answer take a second. A store listing needs no key, so only the certificate
bags are decrypted here (PKCS#12 PBE with SHA-1 and 3DES, or PBES2 with AES, which Windows exports);
anything else falls back to cryptography.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

from asn1crypto import algos
from asn1crypto import pkcs12 as asn1_pkcs12
from asn1crypto import x509 as asn1_x509
from cryptography.hazmat.decrepit.ciphers.algorithms import TripleDES
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
from cryptography.hazmat.primitives.padding import PKCS7
from cryptography.hazmat.primitives.serialization import Encoding, pkcs12


class PfxError(ValueError):
    """The PFX cannot be opened with the password."""


@dataclass(frozen=True)
class PfxEntry:
    """The leaf certificate of a PFX and its key's presence and kind."""

    der: bytes
    has_key: bool
    ec_key: bool


def _bmp_password(password: bytes) -> bytes:
    return password.decode("utf-8").encode("utf-16-be") + b"\x00\x00" if password else b""


def _fill(data: bytes, v: int) -> bytes:
    """data repeated to the next multiple of v bytes."""
    if not data:
        return b""
    length = v * -(-len(data) // v)
    return (data * (length // len(data) + 1))[:length]


def pkcs12_kdf(password: bytes, salt: bytes, iterations: int, length: int, purpose: int) -> bytes:
    """RFC 7292 appendix B.2 with SHA-1 (purpose 1: key, 2: IV)."""
    u, v = 20, 64
    d = bytes([purpose]) * v
    i = bytearray(_fill(salt, v) + _fill(_bmp_password(password), v))
    out = b""
    while len(out) < length:
        a = hashlib.sha1(d + bytes(i), usedforsecurity=False).digest()
        for _ in range(iterations - 1):
            a = hashlib.sha1(a, usedforsecurity=False).digest()
        out += a
        b = int.from_bytes((a * (v // u + 1))[:v], "big") + 1
        for j in range(0, len(i), v):
            block = (int.from_bytes(i[j : j + v], "big") + b) % (1 << (v * 8))
            i[j : j + v] = block.to_bytes(v, "big")
    return out[:length]


def _decrypt(algorithm: algos.EncryptionAlgorithm, data: bytes, password: bytes) -> bytes:
    name = algorithm["algorithm"].native
    if name == "pkcs12_sha1_tripledes_3key":
        params = algorithm["parameters"]
        salt, rounds = params["salt"].native, params["iterations"].native
        key = pkcs12_kdf(password, salt, rounds, 24, 1)
        iv = pkcs12_kdf(password, salt, rounds, 8, 2)
        cipher, block = Cipher(TripleDES(key), modes.CBC(iv)), 64
    elif name == "pbes2" and algorithm.encryption_cipher == "aes":
        hmac = algorithm.kdf_hmac
        key = hashlib.pbkdf2_hmac(hmac, password, algorithm.kdf_salt, algorithm.kdf_iterations, algorithm.key_length)
        cipher, block = Cipher(algorithms.AES(key), modes.CBC(algorithm.encryption_iv)), 128
    else:
        raise NotImplementedError(name)
    decryptor = cipher.decryptor()
    padded = decryptor.update(data) + decryptor.finalize()
    unpadder = PKCS7(block).unpadder()
    try:
        return unpadder.update(padded) + unpadder.finalize()
    except ValueError as err:
        raise PfxError("wrong password or damaged PFX") from err


def _bags(pfx: asn1_pkcs12.Pfx, password: bytes) -> list[asn1_pkcs12.SafeBag]:
    bags: list[asn1_pkcs12.SafeBag] = []
    for info in pfx.authenticated_safe:
        kind = info["content_type"].native
        if kind == "data":
            bags.extend(asn1_pkcs12.SafeContents.load(info["content"].native))
        elif kind == "encrypted_data":
            encrypted = info["content"]["encrypted_content_info"]
            plain = _decrypt(encrypted["content_encryption_algorithm"], encrypted["encrypted_content"].native, password)
            bags.extend(asn1_pkcs12.SafeContents.load(plain))
        else:
            raise NotImplementedError(kind)
    return bags


def _local_key_id(bag: asn1_pkcs12.SafeBag) -> bytes | None:
    for attribute in bag["bag_attributes"]:
        if attribute["type"].native == "local_key_id":
            return bytes(attribute["values"][0].native)
    return None


def _fast(data: bytes, password: bytes) -> list[PfxEntry]:
    pfx = asn1_pkcs12.Pfx.load(data)
    certs: list[tuple[bytes | None, asn1_x509.Certificate]] = []
    key_ids: list[bytes | None] = []
    for bag in _bags(pfx, password):
        bag_id = bag["bag_id"].native
        if bag_id == "cert_bag" and bag["bag_value"]["cert_id"].native == "x509":
            certs.append((_local_key_id(bag), bag["bag_value"]["cert_value"].parsed))
        elif bag_id in ("key_bag", "pkcs8_shrouded_key_bag"):
            key_ids.append(_local_key_id(bag))
    if not certs:
        return []
    # The certificate that goes with the key is the one Windows puts in the target store.
    leaf = next((c for kid, c in certs if kid is not None and kid in key_ids), None)
    if leaf is None:
        leaf = next((c for _, c in certs if not c.ca), certs[0][1])
    algorithm = leaf.public_key["algorithm"]["algorithm"].native
    return [PfxEntry(leaf.dump(), bool(key_ids), algorithm == "ec")]


def _slow(data: bytes, password: bytes | None) -> list[PfxEntry]:
    bundle = None
    for attempt in (password, None, b""):
        try:
            bundle = pkcs12.load_pkcs12(data, attempt)
            break
        except ValueError:
            continue
    if bundle is None or bundle.cert is None:
        raise PfxError("wrong password or damaged PFX")
    key = bundle.key
    der = bundle.cert.certificate.public_bytes(Encoding.DER)
    return [PfxEntry(der, key is not None, isinstance(key, ec.EllipticCurvePrivateKey))]


def read_pfx(data: bytes, password: bytes | None) -> list[PfxEntry]:
    """The leaf certificate of a PFX (with or without its key); PfxError when it does not open."""
    try:
        return _fast(data, password or b"")
    except (NotImplementedError, ValueError, TypeError, KeyError) as err:
        if isinstance(err, PfxError) and password:
            raise
        return _slow(data, password)
