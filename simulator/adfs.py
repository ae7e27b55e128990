"""An AD FS stand-in over HTTPS: federation metadata, OpenID discovery and JWKS built from lab certificates."""

from __future__ import annotations

import base64
import hashlib
import json
import logging
import ssl
import threading
from collections.abc import Sequence
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Any
from xml.etree import ElementTree as ET

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding, rsa

from simulator.pki import Issued
from simulator.tls import server_context

log = logging.getLogger("certmon.simulator")

MD = "urn:oasis:names:tc:SAML:2.0:metadata"
DS = "http://www.w3.org/2000/09/xmldsig#"
FED = "http://docs.oasis-open.org/wsfed/federation/200706"
XSI = "http://www.w3.org/2001/XMLSchema-instance"
METADATA_PATH = "/FederationMetadata/2007-06/FederationMetadata.xml"
OPENID_PATH = "/adfs/.well-known/openid-configuration"
KEYS_PATH = "/adfs/discovery/keys"
EXC_C14N = "http://www.w3.org/2001/10/xml-exc-c14n#"
RSA_SHA256 = "http://www.w3.org/2001/04/xmldsig-more#rsa-sha256"


def _b64(der: bytes) -> str:
    return base64.b64encode(der).decode()


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _key_descriptor(parent: ET.Element, use: str, cert: Issued) -> None:
    key = ET.SubElement(parent, f"{{{MD}}}KeyDescriptor", {"use": use})
    info = ET.SubElement(key, f"{{{DS}}}KeyInfo")
    ET.SubElement(ET.SubElement(info, f"{{{DS}}}X509Data"), f"{{{DS}}}X509Certificate").text = _b64(cert.der)


def _signature(root: ET.Element, signer: Issued) -> None:
    """An enveloped ds:Signature as AD FS puts first in the document, KeyInfo = the token-signing certificate.

    The element layout follows a published AD FS document (tests/samples/adfs); the digest and the RSA
    signature are computed over this serialisation, not over exclusive C14N, so an XML-DSig validator
    would reject them: certmon reads only which certificate signed, never verifies the signature.
    """
    signature = ET.SubElement(root, f"{{{DS}}}Signature")
    signed_info = ET.SubElement(signature, f"{{{DS}}}SignedInfo")
    ET.SubElement(signed_info, f"{{{DS}}}CanonicalizationMethod", {"Algorithm": EXC_C14N})
    ET.SubElement(signed_info, f"{{{DS}}}SignatureMethod", {"Algorithm": RSA_SHA256})
    reference = ET.SubElement(signed_info, f"{{{DS}}}Reference", {"URI": "#" + root.get("ID", "")})
    transforms = ET.SubElement(reference, f"{{{DS}}}Transforms")
    ET.SubElement(transforms, f"{{{DS}}}Transform", {"Algorithm": f"{DS}enveloped-signature"})
    ET.SubElement(transforms, f"{{{DS}}}Transform", {"Algorithm": EXC_C14N})
    ET.SubElement(reference, f"{{{DS}}}DigestMethod", {"Algorithm": "http://www.w3.org/2001/04/xmlenc#sha256"})
    digest = ET.SubElement(reference, f"{{{DS}}}DigestValue")
    digest.text = _b64(hashlib.sha256(ET.tostring(root)).digest())
    value = ET.SubElement(signature, f"{{{DS}}}SignatureValue")
    key = signer.key
    assert isinstance(key, rsa.RSAPrivateKey), "AD FS token-signing keys are RSA"
    value.text = _b64(key.sign(ET.tostring(signed_info), padding.PKCS1v15(), hashes.SHA256()))
    info = ET.SubElement(signature, f"{{{DS}}}KeyInfo")
    ET.SubElement(ET.SubElement(info, f"{{{DS}}}X509Data"), f"{{{DS}}}X509Certificate").text = _b64(signer.der)


def federation_metadata(
    host: str, signing: Sequence[Issued], encryption: Sequence[Issued], signer: Issued | None = None
) -> bytes:
    """FederationMetadata.xml as AD FS publishes it: signed, then WS-Fed role descriptors, then SAML SP and IdP."""
    ET.register_namespace("", MD)
    ET.register_namespace("ds", DS)
    ET.register_namespace("fed", FED)
    ET.register_namespace("xsi", XSI)
    root = ET.Element(
        f"{{{MD}}}EntityDescriptor", {"ID": "_certmon-lab", "entityID": f"http://{host}/adfs/services/trust"}
    )
    if signer is not None:
        _signature(root, signer)
    for kind, uses in (
        ("fed:ApplicationServiceType", ("encryption", "signing")),
        ("fed:SecurityTokenServiceType", ("signing",)),
    ):
        descriptor = ET.SubElement(
            root,
            f"{{{MD}}}RoleDescriptor",
            {
                f"{{{XSI}}}type": kind,
                "protocolSupportEnumeration": "http://docs.oasis-open.org/ws-sx/ws-trust/200512",
            },
        )
        for use in uses:
            for cert in encryption if use == "encryption" else signing:
                _key_descriptor(descriptor, use, cert)
    sp = ET.SubElement(
        root, f"{{{MD}}}SPSSODescriptor", {"protocolSupportEnumeration": "urn:oasis:names:tc:SAML:2.0:protocol"}
    )
    for cert in encryption:
        _key_descriptor(sp, "encryption", cert)
    for cert in signing:
        _key_descriptor(sp, "signing", cert)
    idp = ET.SubElement(
        root, f"{{{MD}}}IDPSSODescriptor", {"protocolSupportEnumeration": "urn:oasis:names:tc:SAML:2.0:protocol"}
    )
    for cert in signing:
        _key_descriptor(idp, "signing", cert)
    ET.SubElement(
        idp,
        f"{{{MD}}}SingleSignOnService",
        {"Binding": "urn:oasis:names:tc:SAML:2.0:bindings:HTTP-Redirect", "Location": f"https://{host}/adfs/ls/"},
    )
    ET.indent(root)
    return b'<?xml version="1.0" encoding="utf-8"?>\n' + ET.tostring(root, encoding="utf-8")


def openid_configuration(origin: str) -> dict[str, Any]:
    """The discovery document (the fields clients use most)."""
    return {
        "issuer": f"{origin}/adfs",
        "authorization_endpoint": f"{origin}/adfs/oauth2/authorize/",
        "token_endpoint": f"{origin}/adfs/oauth2/token/",
        "jwks_uri": f"{origin}{KEYS_PATH}",
        "response_types_supported": ["code", "id_token", "code id_token"],
        "id_token_signing_alg_values_supported": ["RS256"],
    }


def jwks(signing: Sequence[Issued]) -> dict[str, Any]:
    """The JWKS: one RSA key per token-signing certificate, with its x5t and x5c."""
    keys = []
    for cert in signing:
        public = cert.cert.public_key()
        assert isinstance(public, rsa.RSAPublicKey)
        numbers = public.public_numbers()
        x5t = _b64url(hashlib.sha1(cert.der, usedforsecurity=False).digest())
        keys.append(
            {
                "kty": "RSA",
                "use": "sig",
                "alg": "RS256",
                "kid": x5t,
                "x5t": x5t,
                "n": _b64url(numbers.n.to_bytes((numbers.n.bit_length() + 7) // 8, "big")),
                "e": _b64url(numbers.e.to_bytes((numbers.e.bit_length() + 7) // 8, "big")),
                "x5c": [_b64(cert.der)],
            }
        )
    return {"keys": keys}


class _Handler(BaseHTTPRequestHandler):
    server: _Server
    protocol_version = "HTTP/1.1"
    server_version = "Microsoft-HTTPAPI/2.0"
    sys_version = ""

    def log_message(self, format: str, *args: Any) -> None:
        log.debug("adfs simulator: " + format, *args)

    def do_GET(self) -> None:
        owner = self.server.owner
        path = self.path.split("?", 1)[0]
        owner.requests.append(path)
        host = self.headers.get("Host") or f"{owner.host_name}"
        origin = f"https://{host}"
        body: bytes | None
        content_type = "application/json"
        if path in owner.failing:
            self._reply(owner.failing[path], b"<html><body>Service Unavailable</body></html>", "text/html")
            return
        if path == METADATA_PATH:
            body = owner.metadata_override or federation_metadata(
                owner.host_name, owner.signing, owner.encryption, owner.primary_signing
            )
            content_type = "application/samlmetadata+xml"
        elif path == OPENID_PATH:
            document = openid_configuration(origin)
            if owner.jwks_uri:
                document["jwks_uri"] = owner.jwks_uri
            body = json.dumps(document).encode()
        elif path == KEYS_PATH:
            body = owner.keys_override or json.dumps(jwks(owner.signing)).encode()
        else:
            body = None
        if body is None:
            self._reply(404, b"Not Found", "text/plain")
        else:
            self._reply(200, body, content_type)

    def _reply(self, status: int, body: bytes, content_type: str) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


class _Server(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, address: tuple[str, int], owner: AdfsServer) -> None:
        self.owner = owner
        super().__init__(address, _Handler)

    def finish_request(self, request: Any, client_address: Any) -> None:
        """The TLS handshake runs on the request thread, so a stalled client cannot block accept()."""
        request.settimeout(10)
        try:
            request = self.owner.context.wrap_socket(request, server_side=True)
        except (ssl.SSLError, OSError) as err:
            log.debug("adfs simulator: handshake failed: %s", err)
            return
        super().finish_request(request, client_address)


class AdfsServer:
    """AD FS on loopback over HTTPS; a context manager.

    `failing` maps a path to an HTTP status the server answers instead of the document;
    `metadata_override` and `keys_override` replace the metadata and JWKS bytes (malformed documents
    in tests); `jwks_uri`
    replaces the discovery document's pointer to the keys.
    """

    def __init__(
        self,
        ssl_cert: Issued,
        chain: Sequence[Issued],
        signing: Sequence[Issued],
        encryption: Sequence[Issued],
        *,
        host_name: str,
        host: str = "127.0.0.1",
        port: int = 0,
        failing: dict[str, int] | None = None,
        metadata_override: bytes | None = None,
        jwks_uri: str | None = None,
        primary_signing: Issued | None = None,
    ) -> None:
        self.context = server_context(ssl_cert, chain)
        self.signing = tuple(signing)
        self.encryption = tuple(encryption)
        # The token-signing certificate in use signs the metadata: by default the newest (promoted).
        self.primary_signing = primary_signing or max(
            self.signing, key=lambda c: c.cert.not_valid_before_utc, default=None
        )
        self.host_name = host_name
        self.failing = dict(failing or {})
        self.metadata_override = metadata_override
        self.keys_override: bytes | None = None
        self.jwks_uri = jwks_uri
        self.requests: list[str] = []
        self._server = _Server((host, port), self)
        self._thread: threading.Thread | None = None

    @property
    def port(self) -> int:
        """The bound port."""
        return int(self._server.server_address[1])

    @property
    def url(self) -> str:
        """The base URL by AD FS name (resolve it to 127.0.0.1 with the collector's `resolve`)."""
        return f"https://{self.host_name}:{self.port}"

    def start(self) -> AdfsServer:
        """Serve on a background thread."""
        self._thread = threading.Thread(target=self._server.serve_forever, name="sim-adfs", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop serving."""
        self._server.shutdown()
        self._server.server_close()

    def __enter__(self) -> AdfsServer:
        return self.start()

    def __exit__(
        self, kind: type[BaseException] | None, value: BaseException | None, trace: TracebackType | None
    ) -> None:
        self.stop()
