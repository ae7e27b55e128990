"""Chain validation done by certmon: verdicts in the operator's words, at an injected moment."""

from __future__ import annotations

from datetime import datetime, timedelta
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.x509.oid import NameOID

from collectors.errors import CollectorError, Reason
from collectors.tls.chain import (
    ChainError,
    ChainJudge,
    TrustCache,
    load_bundle,
    matches_name,
    verify_chain,
)
from simulator.lab import Lab
from simulator.pki import Issued, days, make_certificate, rsa_key


def _trust(lab: Lab):  # type: ignore[no-untyped-def]
    return load_bundle(lab.ca_bundle)


def test_a_lab_certificate_validates_for_its_names(lab: Lab, now: datetime) -> None:
    star = lab.cert("ServiceFabric", "new").issued
    trust = _trust(lab)
    for name in ("ax.d365ffo.onprem.contoso.lab", "AOS1.contoso.lab", "sf.d365ffo.onprem.contoso.lab."):
        verdict = verify_chain([star.cert, lab.ca.cert], name, trust, now)
        assert verdict.valid, (name, verdict)
    # The intermediate is optional when the bundle holds the issuer.
    assert verify_chain([star.cert], "aos1.contoso.lab", trust, now).valid


def test_expired_not_yet_valid_and_the_injected_clock(lab: Lab, now: datetime) -> None:
    expired = lab.service_certs["tls-expired"]
    verdict = verify_chain([expired.cert, lab.ca.cert], "expired.contoso.lab", _trust(lab), now)
    assert (verdict.valid, verdict.error) == (False, ChainError.EXPIRED)
    assert "expired on" in verdict.message and "expired.contoso.lab" in verdict.message

    # The same certificate judged three weeks earlier was fine: the clock is a parameter.
    assert verify_chain([expired.cert], "expired.contoso.lab", _trust(lab), now - timedelta(days=21)).valid

    early = lab.cert("SSRSHTTPS", "new").issued
    before = early.cert.not_valid_before_utc - timedelta(days=1)
    verdict = verify_chain([early.cert], "bi1.contoso.lab", _trust(lab), before)
    assert verdict.error is ChainError.NOT_YET_VALID and "not valid before" in verdict.message


def test_an_expired_intermediate_is_named(lab: Lab, now: datetime) -> None:
    intermediate = make_certificate(
        "Contoso Issuing CA", not_before=days(now, -400), not_after=days(now, -2), issuer=lab.ca, is_ca=True
    )
    leaf = make_certificate(
        "app.contoso.lab",
        not_before=days(now, -10),
        not_after=days(now, 100),
        issuer=intermediate,
        dns_names=("app.contoso.lab",),
    )
    verdict = verify_chain([leaf.cert, intermediate.cert], "app.contoso.lab", _trust(lab), now)
    assert verdict.error is ChainError.EXPIRED
    assert verdict.message.startswith("chain certificate CN=Contoso Issuing CA")


def test_wrong_name_self_signed_and_untrusted(lab: Lab, now: datetime) -> None:
    trust = _trust(lab)
    wrong = lab.service_certs["tls-wrongname"]
    verdict = verify_chain([wrong.cert], "wrongname.contoso.lab", trust, now)
    assert verdict.error is ChainError.HOSTNAME_MISMATCH
    assert verdict.message == "certificate is for other.contoso.lab, not wrongname.contoso.lab"

    self_signed = lab.cert("DataEncryption", "new").issued  # generated self-signed, as the scripts do
    verdict = verify_chain([self_signed.cert], "DataEncryption.d365ffo.onprem", trust, now)
    assert verdict.error is ChainError.SELF_SIGNED

    rogue = lab.service_certs["tls-untrusted"]
    verdict = verify_chain([rogue.cert, lab.service_certs["rogue-ca"].cert], "untrusted.contoso.lab", trust, now)
    assert verdict.error is ChainError.UNTRUSTED
    assert "Untrusted Test Root CA" in verdict.message


def test_a_certificate_without_subject_alt_name_matches_no_name(lab: Lab, now: datetime) -> None:
    # Modern clients (and blackbox_exporter's Go) ignore the CN: no subjectAltName, no match.
    no_san = make_certificate("legacy.contoso.lab", not_before=days(now, -1), not_after=days(now, 90), issuer=lab.ca)
    verdict = verify_chain([no_san.cert], "legacy.contoso.lab", _trust(lab), now)
    assert verdict.error is ChainError.HOSTNAME_MISMATCH
    assert "no subjectAltName" in verdict.message


def test_a_policy_failure_is_reported_as_invalid_with_the_detail(lab: Lab, now: datetime) -> None:
    # A CA certificate presented as a server certificate: trusted issuer, right name, wrong profile.
    ca_as_leaf = make_certificate(
        "web.contoso.lab",
        not_before=days(now, -1),
        not_after=days(now, 90),
        issuer=lab.ca,
        is_ca=True,
        dns_names=("web.contoso.lab",),
    )
    verdict = verify_chain([ca_as_leaf.cert], "web.contoso.lab", _trust(lab), now)
    assert verdict.error is ChainError.INVALID
    assert verdict.message and "validation failed" not in verdict.message


def _leaf_without_aki(ca: Issued, now: datetime) -> x509.Certificate:
    key = rsa_key("no-aki")
    return (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "noaki.contoso.lab")]))
        .issuer_name(ca.cert.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(days(now, -1))
        .not_valid_after(days(now, 30))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName("noaki.contoso.lab")]), critical=False)
        .sign(ca.key, hashes.SHA256())  # type: ignore[arg-type]
    )


def test_a_leaf_without_authority_key_identifier_is_accepted(lab: Lab, now: datetime) -> None:
    leaf = _leaf_without_aki(lab.ca, now)
    assert verify_chain([leaf], "noaki.contoso.lab", _trust(lab), now).valid


@pytest.mark.parametrize(
    ("pattern", "name", "expected"),
    [
        ("*.contoso.lab", "aos1.contoso.lab", True),
        ("*.contoso.lab", "AOS1.Contoso.Lab", True),
        ("*.contoso.lab", "contoso.lab", False),
        ("*.contoso.lab", "a.b.contoso.lab", False),
        ("aos1.contoso.lab", "aos1.contoso.lab.", True),
        ("aos1.contoso.lab", "aos2.contoso.lab", False),
    ],
)
def test_name_matching(now: datetime, pattern: str, name: str, expected: bool) -> None:
    cert = make_certificate("x", not_before=days(now, -1), not_after=days(now, 1), dns_names=(pattern,))
    assert matches_name(cert.cert, name) is expected


def test_ip_address_endpoints_match_ip_sans(now: datetime) -> None:
    cert = make_certificate(
        "10.0.1.11", not_before=days(now, -1), not_after=days(now, 1), ip_addresses=("10.0.1.11", "::1")
    )
    assert matches_name(cert.cert, "10.0.1.11")
    assert matches_name(cert.cert, "[::1]")
    assert not matches_name(cert.cert, "10.0.1.12")


def test_bundles_name_the_file_when_unusable(tmp_path: Path, lab: Lab) -> None:
    with pytest.raises(CollectorError) as missing:
        load_bundle(tmp_path / "absent.pem")
    assert missing.value.reason is Reason.NOT_FOUND and "absent.pem" in str(missing.value)

    garbage = tmp_path / "garbage.pem"
    garbage.write_text("this is not a certificate\n")
    with pytest.raises(CollectorError) as bad:
        load_bundle(garbage)
    assert bad.value.reason is Reason.CONFIG_ERROR and "no usable certificate" in str(bad.value)

    mixed = tmp_path / "mixed.pem"
    broken = b"-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n"
    mixed.write_bytes(broken + lab.ca.pem)
    store = load_bundle(mixed)
    assert (store.count, store.skipped) == (1, 1)


def test_trust_cache_reloads_a_replaced_bundle(tmp_path: Path, lab: Lab, now: datetime) -> None:
    bundle = tmp_path / "ca.pem"
    bundle.write_bytes(lab.service_certs["rogue-ca"].pem)
    cache = TrustCache()
    first = cache.get(bundle)
    assert cache.get(bundle) is first
    star = lab.cert("ServiceFabric", "new").issued
    assert not verify_chain([star.cert], "aos1.contoso.lab", first, now).valid
    bundle.write_bytes(lab.ca.pem + lab.service_certs["rogue-ca"].pem)
    second = cache.get(bundle)
    assert second is not first and second.count == 2
    assert verify_chain([star.cert], "aos1.contoso.lab", second, now).valid


def test_judge_reuses_a_verdict_only_until_a_certificate_expires(lab: Lab, now: datetime) -> None:
    judge = ChainJudge()
    trust = _trust(lab)
    star = lab.cert("ServiceFabric", "old").issued  # expires in 12 days
    chain = (star.der, lab.ca.der)
    assert judge.verify(chain, "aos1.contoso.lab", trust, now).valid
    assert judge.verify(chain, "aos1.contoso.lab", trust, now + timedelta(days=11)).valid
    later = judge.verify(chain, "aos1.contoso.lab", trust, now + timedelta(days=13))
    assert later.error is ChainError.EXPIRED
    # Another name is another question.
    assert judge.verify(chain, "other.example", trust, now).error is ChainError.HOSTNAME_MISMATCH
    assert judge.verify((b"\x30\x03\x02\x01\x00",), "x", trust, now).error is ChainError.INVALID
