"""AD FS auto-rollover: which published token certificate is in use, from real and simulated metadata."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

from collectors.adfs import AdfsCollector, AdfsFacts
from collectors.adfs.metadata import parse_federation_metadata
from collectors.adfs.rollover import rollover_metrics, rollover_states
from collectors.base import Deadline
from collectors.certificate import certificate_from_der
from simulator.adfs import AdfsServer
from simulator.lab import ADFS_HOST, Lab

SAMPLE = Path(__file__).resolve().parents[2] / "samples" / "adfs" / "FederationMetadata-devrcsj.xml"


def _states(facts: AdfsFacts) -> dict[tuple[str, str], str]:
    return {(t.role, t.thumbprint): t.state for t in facts.token_certificates}


def test_a_published_adfs_document_signer_is_its_token_signing_certificate() -> None:
    # A real AD FS FederationMetadata.xml: self-signed "ADFS Signing - <host>", which signs the document.
    metadata = parse_federation_metadata(SAMPLE.read_bytes(), str(SAMPLE))
    assert metadata.entity_id == "https://d-sts.devrcsj.com/adfs/services/trust"
    assert metadata.signer is not None
    signing = [certificate_from_der(d, "sample") for d in dict.fromkeys(metadata.signing)]
    decrypting = [certificate_from_der(d, "sample") for d in dict.fromkeys(metadata.encryption)]
    signer = certificate_from_der(metadata.signer, "sample")
    assert [c.subject_cn for c in signing] == ["ADFS Signing - d-sts.devrcsj.com"]
    assert [c.subject_cn for c in decrypting] == ["ADFS Encryption - d-sts.devrcsj.com"]
    assert signing[0].self_signed and decrypting[0].self_signed
    assert signer.thumbprint == signing[0].thumbprint == "011BB9D94A7D8B160E86827DDCC3FA714D882473"
    states = rollover_states(
        {
            "ADFSTokenSigning": {c.thumbprint: c for c in signing},
            "ADFSTokenDecrypting": {c.thumbprint: c for c in decrypting},
        },
        signer.thumbprint,
    )
    assert [(t.role, t.state) for t in states] == [("ADFSTokenSigning", "primary"), ("ADFSTokenDecrypting", "primary")]


def _collect(lab: Lab, now: datetime, **kwargs: object) -> AdfsFacts:
    certs = lab.service_certs
    server = AdfsServer(
        certs["ADFSSSL"],
        (lab.ca,),
        [certs["ADFSTokenSigning-old"], certs["ADFSTokenSigning-new"]],
        [certs["ADFSTokenDecrypting-old"], certs["ADFSTokenDecrypting-new"]],
        host_name=ADFS_HOST,
        **kwargs,  # type: ignore[arg-type]
    )
    with server:
        collector = AdfsCollector(
            [server.url], ca_bundle=lab.ca_bundle, resolve={ADFS_HOST: "127.0.0.1"}, clock=lambda: now
        )
        facts = collector.collect(collector.targets()[0], Deadline.after(10)).facts
    assert isinstance(facts, AdfsFacts)
    return facts


def test_after_promotion_the_old_certificates_are_superseded(lab: Lab, now: datetime) -> None:
    certs = lab.service_certs
    facts = _collect(lab, now)
    assert facts.metadata_signer == certs["ADFSTokenSigning-new"].thumbprint
    assert _states(facts) == {
        ("ADFSTokenSigning", certs["ADFSTokenSigning-old"].thumbprint): "superseded",
        ("ADFSTokenSigning", certs["ADFSTokenSigning-new"].thumbprint): "primary",
        ("ADFSTokenDecrypting", certs["ADFSTokenDecrypting-old"].thumbprint): "superseded",
        ("ADFSTokenDecrypting", certs["ADFSTokenDecrypting-new"].thumbprint): "primary",
    }
    pending = dict(AdfsCollector.metrics[1].samples(facts, "adfs"))
    assert pending == {("adfs", "ADFSTokenSigning"): 0.0, ("adfs", "ADFSTokenDecrypting"): 0.0}


def test_before_promotion_the_new_certificates_are_secondary(lab: Lab, now: datetime) -> None:
    certs = lab.service_certs
    facts = _collect(lab, now, primary_signing=certs["ADFSTokenSigning-old"])
    assert _states(facts) == {
        ("ADFSTokenSigning", certs["ADFSTokenSigning-old"].thumbprint): "primary",
        ("ADFSTokenSigning", certs["ADFSTokenSigning-new"].thumbprint): "secondary",
        ("ADFSTokenDecrypting", certs["ADFSTokenDecrypting-old"].thumbprint): "primary",
        ("ADFSTokenDecrypting", certs["ADFSTokenDecrypting-new"].thumbprint): "secondary",
    }
    info, pending = rollover_metrics()
    assert dict(pending.samples(facts, "adfs")) == {
        ("adfs", "ADFSTokenSigning"): 1.0,
        ("adfs", "ADFSTokenDecrypting"): 1.0,
    }
    assert ("adfs", "ADFSTokenSigning", certs["ADFSTokenSigning-new"].thumbprint, "secondary") in dict(
        info.samples(facts, "adfs")
    )
