"""AD FS auto-rollover in the rules: no expiry window for a superseded token certificate, no self-signed finding."""

from __future__ import annotations

from collectors.adfs import AdfsFacts
from collectors.adfs.rollover import TokenCertificate
from collectors.certificate import certificate_from_der
from collectors.model import CertObservation, CertReference, Generation, Observation
from tests.daemon.scenarios import Scenario, findings, static_source

HOST = "adfs.contoso.lab"


def _adfs(scenario: Scenario, states: dict[str, str]) -> Observation:
    """What the adfs source reports for the lab's two token-signing certificates in the given states."""
    certs = {g: scenario.lab.service_certs[f"ADFSTokenSigning-{g}"] for g in ("old", "new")}
    observations, references, tokens = [], [], []
    for generation, issued in certs.items():
        cert = certificate_from_der(issued.der, "test")
        observations.append(CertObservation(cert, "adfs", HOST, store="FederationMetadata"))
        gen = Generation.NEW if generation == "new" else Generation.OLD
        references.append(CertReference("ADFSTokenSigning", cert.thumbprint, gen, "metadata", "adfs", HOST))
        tokens.append(TokenCertificate("ADFSTokenSigning", cert.thumbprint, states[generation]))
    facts = AdfsFacts(f"https://{HOST}", token_certificates=tuple(tokens))
    return Observation(tuple(observations), tuple(references), facts)


def test_regression_a_superseded_token_certificate_gets_no_expiry_warning(scenario: Scenario) -> None:
    old = scenario.lab.service_certs["ADFSTokenSigning-old"].thumbprint  # 15 days left
    promoted = _adfs(scenario, {"old": "superseded", "new": "primary"})
    evaluation = scenario.collect(extra=[static_source("adfs", {f"https://{HOST}": promoted})], production=True)
    assert [f for f in evaluation.findings if f.thumbprint == old] == []
    # Before promotion the old one is still in use: its expiry is a warning again.
    waiting = _adfs(scenario, {"old": "primary", "new": "secondary"})
    evaluation = scenario.collect(extra=[static_source("adfs", {f"https://{HOST}": waiting})], production=True)
    assert [(f.rule, f.role) for f in findings(evaluation, "cert-expiry-warning") if f.thumbprint == old] == [
        ("cert-expiry-warning", "ADFSTokenSigning")
    ]


def test_regression_token_certificates_are_self_signed_by_design(scenario: Scenario) -> None:
    waiting = _adfs(scenario, {"old": "primary", "new": "secondary"})
    evaluation = scenario.collect(extra=[static_source("adfs", {f"https://{HOST}": waiting})], production=True)
    assert [f for f in findings(evaluation, "self-signed-in-production") if f.role == "ADFSTokenSigning"] == []


def _sql_adfs_checked(evaluation):  # type: ignore[no-untyped-def]
    return next(s for s in evaluation.checklist.steps if s.step == "sql-adfs-checked")


def test_sql_adfs_checked_is_not_done_while_the_token_certificate_in_use_is_near_expiry(scenario: Scenario) -> None:
    """Issue 17: the step looked at the newest certificate only; the one AD FS still signs with counts."""
    old = scenario.lab.service_certs["ADFSTokenSigning-old"].thumbprint  # 15 days left, inside its warning window
    waiting = _adfs(scenario, {"old": "primary", "new": "secondary"})
    evaluation = scenario.collect(extra=[static_source("adfs", {f"https://{HOST}": waiting})], production=True)
    step = _sql_adfs_checked(evaluation)
    assert str(step.status) != "done" and old[:8] in " ".join([step.detail, *step.evidence]), step
    promoted = _adfs(scenario, {"old": "superseded", "new": "primary"})
    evaluation = scenario.collect(extra=[static_source("adfs", {f"https://{HOST}": promoted})], production=True)
    step = _sql_adfs_checked(evaluation)
    assert old[:8] not in " ".join([step.detail, *step.evidence]), "a superseded certificate does not count"
