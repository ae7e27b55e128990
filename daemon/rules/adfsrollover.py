"""AD FS auto-rollover in the rules: superseded token certificates and self-signed token certificates."""

from __future__ import annotations

from collectors.adfs import AdfsFacts
from collectors.adfs.rollover import ROLLOVER_ROLES, superseded_of
from daemon.context import Context

# AD FS token-signing/decrypting certificates are self-signed by design with AutoCertificateRollover
# (the published "ADFS Signing - <host>" certificates); relying parties trust them by thumbprint
# from the metadata, not by chain, so self-signed is never a finding for these roles.
SELF_SIGNED_BY_DESIGN = frozenset(ROLLOVER_ROLES)


def superseded_token_certificates(ctx: Context) -> frozenset[tuple[str, str]]:
    """(role, thumbprint) of AD FS token certificates a newer one of the same role has replaced."""
    return superseded_of(facts.token_certificates for _target, facts in ctx.snapshot.facts("adfs", AdfsFacts))
