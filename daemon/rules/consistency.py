"""One role, one certificate everywhere; and no self-signed certificates where production needs a CA."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable

from collectors.model import CertObservation, Finding, Generation, Severity
from daemon.context import Context, listing, live_references
from daemon.inventory import NODE_STORE_SOURCES, certificates, label, node_inventory, node_key
from daemon.rules.adfsrollover import SELF_SIGNED_BY_DESIGN


def _role_names(ctx: Context) -> dict[str, set[str]]:
    """Per role, the subject CNs of the certificates configurations name for it."""
    names: dict[str, set[str]] = defaultdict(set)
    seen = certificates(ctx)
    for thumbprint, roles in ctx.roles.items():
        obs = seen.get(thumbprint)
        if obs is None or not obs.certificate.subject_cn:
            continue
        for role in roles:
            names[role].add(obs.certificate.subject_cn.lower())
    return names


def node_consistency_findings(ctx: Context) -> Iterable[Finding]:
    """Nodes of one role that hold a valid, unconfigured certificate of that role's subject the others lack.

    Whatever picks certificates by subject (Service Fabric's common-name declarations, IIS,
    scripts) then uses different certificates on different nodes.
    """
    inventory = node_inventory(ctx)
    # Valid certificates no configuration names, per node: the candidates, computed once.
    strays: dict[str, list[CertObservation]] = {}
    for key in inventory.stores:
        strays[key] = [
            o
            for o in inventory.observations(key)
            if o.thumbprint not in ctx.roles and o.certificate.not_before <= ctx.now < o.certificate.not_after
        ]
    for role, subjects in sorted(_role_names(ctx).items()):
        nodes = [n for n in inventory.needing(role) if inventory.covered(node_key(n.name))]
        if len(nodes) < 2:
            continue
        holders: dict[str, list[str]] = defaultdict(list)
        for node in nodes:
            for obs in strays.get(node_key(node.name), ()):
                if obs.certificate.subject_cn.lower() in subjects and node.name not in holders[obs.thumbprint]:
                    holders[obs.thumbprint].append(node.name)
        for thumbprint, names in sorted(holders.items()):
            if len(names) == len(nodes):
                continue
            others = [n.name for n in nodes if n.name not in names]
            yield Finding(
                "cert-inconsistent-across-nodes",
                Severity.WARNING,
                f"{listing(names)} also hold{'s' if len(names) == 1 else ''} a {role} certificate "
                f"{label(ctx, thumbprint)} that no configuration names and {listing(others)} do not: nodes that "
                f"choose by subject may present different certificates; remove it or roll it out everywhere",
                role=role,
                thumbprint=thumbprint,
                node=names[0] if len(names) == 1 else "",
                step="certs-installed",
            )


def reference_consistency_findings(ctx: Context) -> Iterable[Finding]:
    """A per-node configuration setting (read from the nodes) names different thumbprints on different nodes.

    Only node sources count: a setting may legitimately list several certificates on one node
    (AD FS rollover), and endpoints presenting different certificates have their own rule.
    """
    values: dict[tuple[str, str, str], dict[str, set[str]]] = defaultdict(lambda: defaultdict(set))
    for ref in live_references(ctx):
        if ref.node and ref.source in NODE_STORE_SOURCES:
            values[(ref.role, ref.source, ref.reference)][ref.node].add(ref.thumbprint)
    for (role, source, reference), by_node in sorted(values.items()):
        variants: dict[frozenset[str], list[str]] = defaultdict(list)
        for node, thumbprints in sorted(by_node.items()):
            variants[frozenset(thumbprints)].append(node)
        if len(variants) < 2:
            continue
        detail = "; ".join(
            f"{', '.join(sorted(thumbprints))} on {listing(nodes)}" for thumbprints, nodes in variants.items()
        )
        yield Finding(
            "cert-inconsistent-across-nodes",
            Severity.WARNING,
            f"{reference} names different {role} certificates on different nodes: {detail}",
            role=role,
            source=source,
            target=reference,
            step="lcs-settings-applied",
        )


def self_signed_findings(ctx: Context) -> Iterable[Finding]:
    """In production, a certificate of a role that needs a CA is self-signed."""
    if not ctx.settings.production:
        return
    allowed = set(ctx.settings.rules.self_signed_roles) | SELF_SIGNED_BY_DESIGN
    generations: dict[tuple[str, str], set[Generation]] = defaultdict(set)
    for ref in ctx.references:
        if ref.thumbprint and ref.role not in allowed:
            generations[(ref.role, ref.thumbprint)].add(ref.generation)
    seen = certificates(ctx)
    for (role, thumbprint), kinds in sorted(generations.items()):
        obs = seen.get(thumbprint)
        # The outgoing generation is on its way out; what matters is what stays in use.
        if obs is None or not obs.certificate.self_signed or kinds == {Generation.OLD}:
            continue
        yield Finding(
            "self-signed-in-production",
            Severity.WARNING,
            f"{role} certificate {label(ctx, thumbprint)} is self-signed in a production environment: issue it "
            f"from a certificate authority the clients trust (ConfigTemplate.xml generateADCSCert or your CA)",
            role=role,
            thumbprint=thumbprint,
            step="certs-generated",
        )
