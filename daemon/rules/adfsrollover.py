"""AD FS auto-rollover in the rules: superseded token certificates and self-signed token certificates."""

from __future__ import annotations

from collectors.adfs import AdfsFacts
from collectors.adfs.rollover import ROLLOVER_ROLES, SUPERSEDED
from daemon.context import Context

# AD FS token-signing/decrypting certificates are self-signed by design with AutoCertificateRollover
# (the published "ADFS Signing - <host>" certificates); relying parties trust them by thumbprint
# from the metadata, not by chain, so self-signed is never a finding for these roles.
SELF_SIGNED_BY_DESIGN = frozenset(ROLLOVER_ROLES)


def superseded_token_certificates(ctx: Context) -> frozenset[tuple[str, str]]:
    """(role, thumbprint) of AD FS token certificates a newer one of the same role has replaced."""
    found: set[tuple[str, str]] = set()
    for _target, facts in ctx.snapshot.facts("adfs", AdfsFacts):
        found.update((t.role, t.thumbprint) for t in facts.token_certificates if t.state == SUPERSEDED)
    # A certificate another AD FS (or any source) still uses as primary is not superseded.
    for _target, facts in ctx.snapshot.facts("adfs", AdfsFacts):
        found.difference_update((t.role, t.thumbprint) for t in facts.token_certificates if t.state != SUPERSEDED)
    return frozenset(found)
