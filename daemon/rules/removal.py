"""Old certificates removed from nodes while something still needs them.

Two kinds of evidence: the state store's history (the certificate was seen on that node and
is gone since a later successful collection, across daemon restarts) and the topology (a node
whose purpose needs the role does not hold it now).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass

from collectors.model import CertReference, Finding, Generation, Severity
from collectors.sql.reencryption import reencryption_complete_evidence
from daemon.context import Context, listing, live_references
from daemon.inventory import NODE_STORE_SOURCES, label, node_inventory, node_key, template_pair

DATA_ENCRYPTION = "DataEncryption"

# The runbook step that must be finished before a certificate a source still names may go.
REFERENCE_STEPS = {"clusterconfig": "sf-cleaned", "localagent": "localagent-updated"}


@dataclass(frozen=True)
class Absence:
    """A certificate that is not on a node that needs it, and the evidence."""

    node: str
    evidence: str
    source: str
    target: str


def absences(ctx: Context, thumbprint: str, roles: Iterable[str]) -> list[Absence]:
    """Nodes that lost the certificate (history) or that need one of the roles and lack it (topology)."""
    inventory = node_inventory(ctx)
    found: dict[str, Absence] = {}
    for entry in ctx.history.removals(thumbprint, NODE_STORE_SOURCES):
        key = node_key(entry.node)
        if inventory.holds(key, thumbprint) or key in found:
            continue
        gone = f", gone since {entry.last_absent:%Y-%m-%d %H:%M}Z" if entry.last_absent else ""
        found[key] = Absence(
            entry.node,
            f"removed from {entry.node} (seen there until {entry.last_seen:%Y-%m-%d %H:%M}Z{gone})",
            entry.source,
            entry.target,
        )
    for role in sorted(set(roles)):
        for node in inventory.needing(role):
            key = node_key(node.name)
            if key in found or not inventory.covered(key) or inventory.holds(key, thumbprint):
                continue
            store = inventory.stores[key][0]
            found[key] = Absence(node.name, f"missing on {node.name} ({node.purpose} node)", store.source, store.target)
    return [found[key] for key in sorted(found)]


def previous_data_encryption(ctx: Context) -> list[str]:
    """The previous generation's DataEncryption thumbprints (ConfigTemplate pair, running configurations)."""
    old = set(template_pair(ctx).retired(DATA_ENCRYPTION))
    old |= {
        r.thumbprint
        for r in live_references(ctx)
        if r.role == DATA_ENCRYPTION and r.generation is Generation.OLD and r.thumbprint
    }
    return sorted(old)


def data_encryption_removed_findings(ctx: Context) -> Iterable[Finding]:
    """The previous DataEncryption certificate is gone from a node while re-encryption is not known complete.

    Without SQL evidence re-encryption completeness is unknown, and unknown counts as not
    complete: removing the certificate too early loses encrypted data, a false alarm costs a
    re-import.
    """
    old = previous_data_encryption(ctx)
    if not old:
        return
    complete = reencryption_complete_evidence(ctx.snapshot)
    if complete.value is True:
        return
    state = "is not complete" if complete.value is False else "is not known to be complete"
    for thumbprint in old:
        for absence in absences(ctx, thumbprint, (DATA_ENCRYPTION,)):
            yield Finding(
                "data-encryption-old-cert-removed-early",
                Severity.CRITICAL,
                f"the previous DataEncryption certificate {label(ctx, thumbprint)} is {absence.evidence} while "
                f"re-encryption {state} ({complete.detail}): data still encrypted with it becomes unreadable; "
                f"re-import it on {absence.node} and keep it until re-encryption has finished",
                role=DATA_ENCRYPTION,
                thumbprint=thumbprint,
                node=absence.node,
                source=absence.source,
                target=absence.target,
                step="reencryption-complete",
            )


def old_cert_removed_findings(ctx: Context) -> Iterable[Finding]:
    """A previous-generation certificate a running configuration still names is gone from a node."""
    referenced: dict[str, list[CertReference]] = defaultdict(list)
    for ref in live_references(ctx):
        if ref.generation is Generation.OLD and ref.role != DATA_ENCRYPTION:
            referenced[ref.thumbprint].append(ref)
    for thumbprint, refs in sorted(referenced.items()):
        names = listing(sorted({r.reference for r in refs}), 2)
        step = next((REFERENCE_STEPS[r.source] for r in refs if r.source in REFERENCE_STEPS), "old-certs-removable")
        role = sorted({r.role for r in refs})[0]
        for absence in absences(ctx, thumbprint, {r.role for r in refs}):
            yield Finding(
                "old-cert-removed-early",
                Severity.CRITICAL,
                f"{role} certificate {label(ctx, thumbprint)} is {absence.evidence}, but {names} still names it: "
                f"re-import it on {absence.node}, and remove it only after {step}",
                role=role,
                thumbprint=thumbprint,
                node=absence.node,
                source=absence.source,
                target=absence.target,
                step=step,
            )
