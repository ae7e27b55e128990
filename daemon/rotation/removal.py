"""Which old certificates may be deleted: only when every step that still needs one is done."""

from __future__ import annotations

from collections.abc import Mapping

from collectors.model import Generation
from daemon.context import Context, listing, live_references, short
from daemon.inventory import Rotation, template_pair
from daemon.rotation.model import OldCertificate, StepState, Verdict, done, not_applicable, pending, unknown

_SF_STEPS = (
    "certs-installed",
    "sf-staged",
    "sf-upgraded",
    "localagent-updated",
    "deployment-config-updated",
    "sf-cleaned",
)

# The runbook steps that still need the previous certificate of a role, per role.
STEP_NEEDS: dict[str, tuple[str, ...]] = {
    "ServiceFabric": _SF_STEPS,
    "ServiceFabricClient": _SF_STEPS,
    "ServiceFabricEncryption": ("certs-installed", "credentials-rotated", "lcs-settings-applied"),
    "DataEncryption": (
        "certs-installed",
        "axdb-backed-up",
        "lcs-settings-applied",
        "reencryption-enabled",
        "reencryption-complete",
    ),
    "SQLCluster": ("certs-installed", "sql-adfs-checked"),
}
DEFAULT_NEEDS = ("certs-installed", "lcs-settings-applied")


def steps_needing(role: str) -> tuple[str, ...]:
    """The steps that must be done before the previous certificate of a role may go."""
    return STEP_NEEDS.get(role, DEFAULT_NEEDS)


def old_certificates(ctx: Context, states: Mapping[str, StepState]) -> list[OldCertificate]:
    """Every previous-generation certificate with whether it is safe to remove, and what blocks it."""
    pair = template_pair(ctx)
    old: dict[tuple[str, str], None] = {}
    for role in pair.rotated_roles():
        for thumbprint in pair.retired(role):
            old[(role, thumbprint)] = None
    # Old references of roles the rotation runbook covers; an AD FS or TLS source's previous
    # certificates follow their own lifecycle.
    runbook_roles = set(pair.pairs) | set(STEP_NEEDS)
    for ref in live_references(ctx):
        if ref.generation is Generation.OLD and ref.role in runbook_roles:
            old[(ref.role, ref.thumbprint)] = None
    out = []
    for role, thumbprint in sorted(old):
        blocking = [s for s in steps_needing(role) if s in states and not states[s].status.satisfied]
        named = sorted({r.reference for r in live_references(ctx, thumbprint)})
        if named:
            blocking.append(f"still named by {listing(named, 2)}")
        detail = "safe to delete" if not blocking else f"still needed: {listing(blocking, 3)}"
        out.append(OldCertificate(role, thumbprint, not blocking, tuple(blocking), detail))
    return out


def old_certs_removable(ctx: Context, states: Mapping[str, StepState]) -> Verdict:
    """All of the above: every old certificate is safe to delete."""
    pair = template_pair(ctx)
    if pair.status == Rotation.UNKNOWN:
        return unknown(pair.reason)
    if pair.status == Rotation.NONE:
        return not_applicable(f"no rotation in progress: no previous generation ({pair.reason})")
    open_steps = {s.step: s for s in states.values() if not s.status.satisfied}
    certs = old_certificates(ctx, states)
    evidence = tuple(f"{c.role} {short(c.thumbprint)}: {c.detail}" for c in certs)
    waiting = [s for s in open_steps.values() if s.status.value == "pending"]
    if waiting:
        return pending(f"waits for {listing([s.step for s in waiting], 5)}", *evidence)
    if open_steps:
        return unknown(f"no evidence yet for {listing(list(open_steps), 5)}", *evidence)
    if any(not c.safe_to_remove for c in certs):
        return pending("some old certificates are still named by a running configuration", *evidence)
    return done("every step is done: the old certificates can be deleted", *evidence)
