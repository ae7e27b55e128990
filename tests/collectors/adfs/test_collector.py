"""AD FS: token-signing, token-decrypting and SSL certificates from a simulated AD FS over HTTPS."""

from __future__ import annotations

import base64
from collections.abc import Iterator
from datetime import datetime
from typing import Any

import pytest

from collectors.adfs.collector import METADATA_PATH, OPENID_PATH, AdfsCollector, AdfsFacts
from collectors.adfs.metadata import parse_federation_metadata, parse_jwks, parse_openid_configuration
from collectors.base import Deadline
from collectors.errors import CollectorError, Reason
from collectors.model import Generation, Observation
from simulator.adfs import KEYS_PATH, AdfsServer, federation_metadata
from simulator.lab import ADFS_HOST, Lab


def _server(lab: Lab, **kwargs: Any) -> AdfsServer:
    certs = lab.service_certs
    return AdfsServer(
        certs["ADFSSSL"],
        (lab.ca,),
        [certs["ADFSTokenSigning-old"], certs["ADFSTokenSigning-new"]],
        [certs["ADFSTokenDecrypting-old"], certs["ADFSTokenDecrypting-new"]],
        host_name=ADFS_HOST,
        **kwargs,
    )


@pytest.fixture
def adfs(lab: Lab) -> Iterator[AdfsServer]:
    with _server(lab) as server:
        yield server


def _collect(lab: Lab, now: datetime, server: AdfsServer, **kwargs: Any) -> Observation:
    kwargs.setdefault("ca_bundle", lab.ca_bundle)
    collector = AdfsCollector([server.url], resolve={ADFS_HOST: "127.0.0.1"}, clock=lambda: now, **kwargs)
    return collector.collect(collector.targets()[0], Deadline.after(10))


def _facts(observation: Observation) -> AdfsFacts:
    assert isinstance(observation.facts, AdfsFacts)
    return observation.facts


def test_every_adfs_certificate_with_its_role_and_generation(lab: Lab, now: datetime, adfs: AdfsServer) -> None:
    observation = _collect(lab, now, adfs)
    certs = lab.service_certs
    roles = {(r.role, r.thumbprint): r.generation for r in observation.references}
    assert roles == {
        ("ADFSTokenSigning", certs["ADFSTokenSigning-old"].thumbprint): Generation.OLD,
        ("ADFSTokenSigning", certs["ADFSTokenSigning-new"].thumbprint): Generation.NEW,
        ("ADFSTokenDecrypting", certs["ADFSTokenDecrypting-old"].thumbprint): Generation.OLD,
        ("ADFSTokenDecrypting", certs["ADFSTokenDecrypting-new"].thumbprint): Generation.NEW,
        ("ADFSSSL", certs["ADFSSSL"].thumbprint): Generation.NEW,
    }
    assert {r.source for r in observation.references} == {"adfs"}
    assert {o.node for o in observation.certificates} == {ADFS_HOST}
    stores = {(o.store, o.thumbprint) for o in observation.certificates}
    assert ("tls", certs["ADFSSSL"].thumbprint) in stores and ("tls", lab.ca.thumbprint) in stores
    assert ("discovery/keys", certs["ADFSTokenSigning-new"].thumbprint) in stores
    assert ("FederationMetadata", certs["ADFSTokenDecrypting-old"].thumbprint) in stores
    facts = _facts(observation)
    assert facts.entity_id == f"http://{ADFS_HOST}/adfs/services/trust"
    assert facts.issuer == f"{adfs.url}/adfs"
    assert facts.chain_valid and facts.tls_version == "TLS 1.3"
    assert facts.documents == {"metadata": "ok", "keys": "ok"}
    assert set(facts.jwks_signing) == {
        certs["ADFSTokenSigning-old"].thumbprint,
        certs["ADFSTokenSigning-new"].thumbprint,
    }
    assert observation.problems == ()
    assert adfs.requests == [METADATA_PATH, OPENID_PATH, KEYS_PATH]


def test_without_openid_discovery_the_keys_are_read_at_their_well_known_path(lab: Lab, now: datetime) -> None:
    # AD FS 2012 R2 has no OpenID discovery document.
    with _server(lab, failing={OPENID_PATH: 404}) as server:
        observation = _collect(lab, now, server)
        requests = list(server.requests)
    assert requests[-1] == KEYS_PATH
    (problem,) = observation.problems
    assert problem.reason is Reason.NOT_FOUND and OPENID_PATH in problem.message
    assert _facts(observation).jwks_signing


def test_one_unreadable_document_is_a_problem(lab: Lab, now: datetime) -> None:
    with _server(lab, failing={METADATA_PATH: 503}) as server:
        observation = _collect(lab, now, server)
    assert _facts(observation).documents == {"metadata": "http_error", "keys": "ok"}
    (problem,) = observation.problems
    assert problem.reason is Reason.HTTP_ERROR and "HTTP 503" in problem.message and METADATA_PATH in problem.message
    # The signing certificates still arrive through the keys.
    assert any(r.role == "ADFSTokenSigning" for r in observation.references)


def test_no_document_at_all_fails_the_target(lab: Lab, now: datetime) -> None:
    with (
        _server(lab, failing={METADATA_PATH: 503, OPENID_PATH: 503, KEYS_PATH: 503}) as server,
        pytest.raises(CollectorError) as err,
    ):
        _collect(lab, now, server)
    assert err.value.reason is Reason.HTTP_ERROR
    assert METADATA_PATH in str(err.value) and KEYS_PATH in str(err.value)


def test_malformed_metadata_is_a_parse_error_naming_the_document(lab: Lab, now: datetime) -> None:
    with _server(lab, metadata_override=b"<html><body>Sign in</body></html>") as server:
        observation = _collect(lab, now, server)
    (problem,) = observation.problems
    assert problem.reason is Reason.PARSE_ERROR
    assert "expected an EntityDescriptor, found <html>" in problem.message and METADATA_PATH in problem.message


def test_an_untrusted_ssl_certificate_is_reported_and_can_stop_the_reading(
    lab: Lab, now: datetime, adfs: AdfsServer
) -> None:
    rogue_bundle = lab.root / "rogue.pem"
    rogue_bundle.write_bytes(lab.service_certs["rogue-ca"].pem)
    observation = _collect(lab, now, adfs, ca_bundle=rogue_bundle)
    assert _facts(observation).chain_error == "untrusted"
    assert [p.reason for p in observation.problems] == [Reason.TLS_ERROR]
    assert any(r.role == "ADFSTokenSigning" for r in observation.references), "documents read by default"

    adfs.requests.clear()
    strict = _collect(lab, now, adfs, ca_bundle=rogue_bundle, require_valid_tls=True)
    assert adfs.requests == [], "no document is read over an unverified connection"
    assert [r.role for r in strict.references] == ["ADFSSSL"]
    assert "documents not read" in strict.problems[-1].message


def test_a_jwks_uri_on_another_host_is_not_followed(lab: Lab, now: datetime) -> None:
    with _server(lab, jwks_uri="https://evil.example/keys") as server:
        observation = _collect(lab, now, server)
        requests = list(server.requests)
    assert requests[-1] == KEYS_PATH
    (problem,) = observation.problems
    assert problem.reason is Reason.BAD_OUTPUT and "evil.example" in problem.message


def test_an_unreachable_adfs_names_its_url(lab: Lab, now: datetime) -> None:
    with _server(lab) as server:
        url = server.url
    collector = AdfsCollector([url], resolve={ADFS_HOST: "127.0.0.1"}, clock=lambda: now)
    with pytest.raises(CollectorError) as err:
        collector.collect(collector.targets()[0], Deadline.after(5))
    assert err.value.reason is Reason.CONNECTION_REFUSED and str(err.value).startswith(url)


def test_non_https_urls_are_refused() -> None:
    with pytest.raises(ValueError, match="https"):
        AdfsCollector(["http://adfs.contoso.lab"])


# Parsing edge cases, on documents as they appear in the field.


def _metadata(lab: Lab) -> bytes:
    certs = lab.service_certs
    return federation_metadata(ADFS_HOST, [certs["ADFSTokenSigning-new"]], [certs["ADFSTokenDecrypting-new"]])


def test_a_key_descriptor_without_use_serves_both_and_the_signature_names_the_signer(lab: Lab) -> None:
    signing = lab.service_certs["ADFSTokenSigning-new"]
    b64 = base64.b64encode(signing.der).decode()
    wrapped = "\n".join(b64[i : i + 64] for i in range(0, len(b64), 64))
    document = f"""<?xml version="1.0"?>
<EntityDescriptor xmlns="urn:oasis:names:tc:SAML:2.0:metadata" entityID="urn:test">
  <ds:Signature xmlns:ds="http://www.w3.org/2000/09/xmldsig#"><ds:KeyInfo><ds:X509Data>
    <ds:X509Certificate>{wrapped}</ds:X509Certificate></ds:X509Data></ds:KeyInfo></ds:Signature>
  <IDPSSODescriptor><KeyDescriptor><KeyInfo xmlns="http://www.w3.org/2000/09/xmldsig#"><X509Data>
    <X509Certificate>{wrapped}</X509Certificate></X509Data></KeyInfo></KeyDescriptor></IDPSSODescriptor>
</EntityDescriptor>""".encode()
    parsed = parse_federation_metadata(document, "test.xml")
    assert parsed.signing == parsed.encryption == (signing.der,)
    assert parsed.signer == signing.der and parsed.entity_id == "urn:test"
    assert parsed.descriptors == ("IDPSSODescriptor",)


def test_simulated_metadata_lists_descriptors_by_type(lab: Lab) -> None:
    parsed = parse_federation_metadata(_metadata(lab), "FederationMetadata.xml")
    assert parsed.descriptors == (
        "RoleDescriptor ApplicationServiceType",
        "RoleDescriptor SecurityTokenServiceType",
        "SPSSODescriptor",
        "IDPSSODescriptor",
    )


@pytest.mark.parametrize(
    ("document", "text"),
    [
        (b'<!DOCTYPE x [<!ENTITY a "b">]><EntityDescriptor/>', "refused XML"),
        (b"<EntityDescriptor", "invalid XML"),
        (b"<EntityDescriptor/>", "no KeyDescriptor certificate"),
        (
            b'<EntityDescriptor><IDPSSODescriptor><KeyDescriptor use="signing"><X509Certificate>%%%'
            b"</X509Certificate></KeyDescriptor></IDPSSODescriptor></EntityDescriptor>",
            "not valid base64",
        ),
    ],
)
def test_bad_metadata_is_refused_with_a_reason(document: bytes, text: str) -> None:
    with pytest.raises(CollectorError) as err:
        parse_federation_metadata(document, "FederationMetadata.xml")
    assert err.value.reason is Reason.PARSE_ERROR and text in err.value.message
    assert str(err.value).startswith("FederationMetadata.xml:")


@pytest.mark.parametrize(
    ("document", "text"),
    [(b"[]", "`keys` array"), (b'{"keys": [1]}', "keys[0] is not an object"), (b'{"keys": [{"x5c": "abc"}]}', "x5c")],
)
def test_bad_jwks_is_refused(document: bytes, text: str) -> None:
    with pytest.raises(CollectorError, match=text.replace("[", r"\[").replace("]", r"\]")):
        parse_jwks(document, "keys")


def test_keys_without_certificates_are_skipped_and_discovery_needs_jwks_uri() -> None:
    assert parse_jwks(b'{"keys": [{"kty": "RSA", "n": "AQAB", "e": "AQAB"}]}', "keys") == ()
    with pytest.raises(CollectorError, match="jwks_uri"):
        parse_openid_configuration(b'{"issuer": "x"}', "openid")
