"""AD FS documents: federation metadata (SAML 2.0 / WS-Federation), OpenID discovery, and the JWKS.

Pure parsing: bytes in, certificates (DER) out, errors naming the document. The XML goes through
defusedxml because metadata travels between organisations.
"""

from __future__ import annotations

import base64
import binascii
from dataclasses import dataclass
from typing import Any

from collectors.errors import CollectorError, Reason
from collectors.files import local_name, parse_json, parse_xml

SAML_METADATA_NS = "urn:oasis:names:tc:SAML:2.0:metadata"
XMLDSIG_NS = "http://www.w3.org/2000/09/xmldsig#"


@dataclass(frozen=True)
class FederationMetadata:
    """The certificates a federation metadata document publishes."""

    entity_id: str
    signing: tuple[bytes, ...]
    encryption: tuple[bytes, ...]
    signer: bytes | None
    descriptors: tuple[str, ...]


def _der(text: str | None, name: str, where: str) -> bytes:
    cleaned = "".join((text or "").split())
    if not cleaned:
        raise CollectorError(name, Reason.PARSE_ERROR, f"empty X509Certificate in {where}")
    try:
        return base64.b64decode(cleaned, validate=True)
    except (binascii.Error, ValueError) as err:
        raise CollectorError(name, Reason.PARSE_ERROR, f"X509Certificate in {where} is not valid base64") from err


def _certificates_under(element: Any, name: str, where: str) -> list[bytes]:
    return [_der(node.text, name, where) for node in element.iter() if local_name(node.tag) == "X509Certificate"]


def _descriptor_name(element: Any) -> str:
    kind = local_name(element.tag)
    if kind != "RoleDescriptor":
        return kind
    # RoleDescriptor carries its real type in xsi:type (fed:SecurityTokenServiceType ...).
    for key, value in element.attrib.items():
        if local_name(key) == "type":
            return f"RoleDescriptor {value.rpartition(':')[2]}"
    return kind


def parse_federation_metadata(data: bytes, name: str) -> FederationMetadata:
    """Signing and encryption KeyDescriptors of every role descriptor, plus the document's signer."""
    root = parse_xml(data, name)
    if local_name(root.tag) != "EntityDescriptor":
        raise CollectorError(name, Reason.PARSE_ERROR, f"expected an EntityDescriptor, found <{local_name(root.tag)}>")
    signing: dict[bytes, None] = {}
    encryption: dict[bytes, None] = {}
    descriptors: list[str] = []
    for descriptor in root:
        if local_name(descriptor.tag) == "Signature":
            continue
        keys = [k for k in descriptor if local_name(k.tag) == "KeyDescriptor"]
        if not keys:
            continue
        label = _descriptor_name(descriptor)
        descriptors.append(label)
        for key in keys:
            use = key.get("use", "")
            certs = _certificates_under(key, name, f"{label} KeyDescriptor use={use or '(none)'}")
            # SAML metadata: a KeyDescriptor without `use` serves both purposes.
            if use in ("signing", ""):
                signing.update(dict.fromkeys(certs))
            if use in ("encryption", ""):
                encryption.update(dict.fromkeys(certs))
    signer = None
    for child in root:
        if local_name(child.tag) == "Signature":
            found = _certificates_under(child, name, "the metadata signature")
            signer = found[0] if found else None
    if not signing and not encryption:
        raise CollectorError(name, Reason.PARSE_ERROR, "the metadata publishes no KeyDescriptor certificate")
    return FederationMetadata(
        root.get("entityID", ""), tuple(signing), tuple(encryption), signer, tuple(dict.fromkeys(descriptors))
    )


@dataclass(frozen=True)
class OpenIdConfiguration:
    """The fields of the OpenID discovery document certmon uses."""

    issuer: str
    jwks_uri: str


def parse_openid_configuration(data: bytes, name: str) -> OpenIdConfiguration:
    """The issuer and jwks_uri of an OpenID discovery document."""
    document = parse_json(data, name)
    if not isinstance(document, dict):
        raise CollectorError(name, Reason.PARSE_ERROR, "expected a JSON object")
    jwks_uri = document.get("jwks_uri")
    if not isinstance(jwks_uri, str) or not jwks_uri:
        raise CollectorError(name, Reason.PARSE_ERROR, "jwks_uri is missing")
    issuer = document.get("issuer")
    return OpenIdConfiguration(issuer if isinstance(issuer, str) else "", jwks_uri)


@dataclass(frozen=True)
class JsonWebKey:
    """One key of a JWKS, with its certificate chain (x5c: leaf first)."""

    kid: str
    use: str
    chain: tuple[bytes, ...]


def parse_jwks(data: bytes, name: str) -> tuple[JsonWebKey, ...]:
    """Every key of a JWKS that carries an x5c certificate chain."""
    document = parse_json(data, name)
    keys = document.get("keys") if isinstance(document, dict) else None
    if not isinstance(keys, list):
        raise CollectorError(name, Reason.PARSE_ERROR, "expected a JSON object with a `keys` array")
    found = []
    for index, key in enumerate(keys):
        if not isinstance(key, dict):
            raise CollectorError(name, Reason.PARSE_ERROR, f"keys[{index}] is not an object")
        x5c = key.get("x5c") or []
        if not isinstance(x5c, list) or not all(isinstance(c, str) for c in x5c):
            raise CollectorError(name, Reason.PARSE_ERROR, f"keys[{index}].x5c is not an array of strings")
        if not x5c:
            continue
        chain = tuple(_der(c, name, f"keys[{index}].x5c") for c in x5c)
        found.append(JsonWebKey(str(key.get("kid", "")), str(key.get("use", "")), chain))
    return tuple(found)
