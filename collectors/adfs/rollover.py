"""AD FS certificate rollover as its published documents show it: which token certificate is in use.

With AutoCertificateRollover, AD FS creates the next token-signing and token-decrypting certificates
(self-signed, "ADFS Signing - <host>" / "ADFS Encryption - <host>") before the current ones expire,
publishes them next to the current ones, promotes them later, and keeps publishing the superseded
ones until they expire. The federation metadata is signed with the token-signing certificate in use
(the `ds:Signature` KeyInfo certificate), which tells which signing certificate is primary.

State of each published certificate of a role:
* `primary`: in use. Signing: the metadata's signer when it is one of the published signing
  certificates, else the newest. Decrypting: no document names it; it is taken to be promoted
  together with the signing certificate (UNVERIFIED: AD FS applies one CertificatePromotionThreshold
  to both), so the newest when signing was promoted to its newest certificate, else the one before.
* `secondary`: published, newer than the primary, not in use yet (relying parties must pick it up).
* `superseded`: older than the primary; published until it expires, no longer used. Its expiry is
  not a problem: the primary's is.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from collectors.certificate import Certificate
from collectors.model import MetricSpec

ROLE_SIGNING = "ADFSTokenSigning"
ROLE_DECRYPTING = "ADFSTokenDecrypting"
ROLLOVER_ROLES = (ROLE_SIGNING, ROLE_DECRYPTING)
PRIMARY, SECONDARY, SUPERSEDED = "primary", "secondary", "superseded"


@dataclass(frozen=True, slots=True)
class TokenCertificate:
    """One published token certificate and its place in the rollover."""

    role: str
    thumbprint: str
    state: str


def _ordered(certs: Mapping[str, Certificate]) -> list[Certificate]:
    return sorted(certs.values(), key=lambda c: (c.not_before, c.not_after, c.thumbprint))


def _states(role: str, ordered: list[Certificate], primary: Certificate) -> list[TokenCertificate]:
    at = ordered.index(primary)
    return [
        TokenCertificate(role, cert.thumbprint, PRIMARY if i == at else SECONDARY if i > at else SUPERSEDED)
        for i, cert in enumerate(ordered)
    ]


def rollover_states(by_role: Mapping[str, Mapping[str, Certificate]], signer: str) -> tuple[TokenCertificate, ...]:
    """The state of every published token-signing and token-decrypting certificate."""
    signing = _ordered(by_role.get(ROLE_SIGNING, {}))
    decrypting = _ordered(by_role.get(ROLE_DECRYPTING, {}))
    found: list[TokenCertificate] = []
    promoted = True
    if signing:
        primary = next((c for c in signing if c.thumbprint == signer), signing[-1])
        promoted = primary is signing[-1]
        found += _states(ROLE_SIGNING, signing, primary)
    if decrypting:
        primary = decrypting[-1] if promoted or len(decrypting) == 1 else decrypting[-2]
        found += _states(ROLE_DECRYPTING, decrypting, primary)
    return tuple(found)


def _state_samples(facts: object, target: str) -> list[tuple[tuple[str, ...], float]]:
    tokens: tuple[TokenCertificate, ...] = getattr(facts, "token_certificates", ())
    return [((target, t.role, t.thumbprint, t.state), 1.0) for t in tokens]


def _pending_samples(facts: object, target: str) -> list[tuple[tuple[str, ...], float]]:
    tokens: tuple[TokenCertificate, ...] = getattr(facts, "token_certificates", ())
    return [
        ((target, role), float(any(t.role == role and t.state == SECONDARY for t in tokens)))
        for role in ROLLOVER_ROLES
        if any(t.role == role for t in tokens)
    ]


def rollover_metrics() -> tuple[MetricSpec, ...]:
    """The AD FS source's rollover metrics, as data."""
    return (
        MetricSpec(
            "certmon_adfs_token_certificate_info",
            "A published AD FS token certificate and its rollover state: primary (in use), secondary (published, "
            "not in use yet) or superseded (still published, no longer used).",
            ("adfs", "role", "thumbprint", "state"),
            _state_samples,
        ),
        MetricSpec(
            "certmon_adfs_rollover_pending",
            "1 while AD FS publishes a token certificate newer than the one in use (relying parties must pick it "
            "up from the metadata before it is promoted).",
            ("adfs", "role"),
            _pending_samples,
        ),
    )


def superseded_of(published: Iterable[Iterable[TokenCertificate]]) -> frozenset[tuple[str, str]]:
    """(role, thumbprint) superseded on every farm that publishes it (one farm still using it: not superseded)."""
    lists = [list(tokens) for tokens in published]
    found = {(t.role, t.thumbprint) for tokens in lists for t in tokens if t.state == SUPERSEDED}
    found.difference_update((t.role, t.thumbprint) for tokens in lists for t in tokens if t.state != SUPERSEDED)
    return frozenset(found)
