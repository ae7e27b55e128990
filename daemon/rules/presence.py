"""What the nodes' stores must hold: the certificates their roles need, with private keys, in a CSP."""

from __future__ import annotations

from collections.abc import Iterable

from collectors.model import Finding, Severity
from daemon.context import Context, in_use, listing, live_references
from daemon.inventory import NodeInventory, label, node_inventory, node_key, template_pair

STEP = "certs-installed"


def _using(ctx: Context, thumbprint: str) -> str:
    refs = sorted({r.reference for r in live_references(ctx, thumbprint)})
    return listing(refs, 2)


def _severity(ctx: Context, thumbprint: str) -> Severity:
    # A certificate a running configuration already names breaks that node now; one only
    # staged in ConfigTemplate.xml breaks it at the next step.
    return Severity.CRITICAL if in_use(ctx, thumbprint) else Severity.WARNING


def _origin(inventory: NodeInventory, key: str) -> tuple[str, str]:
    entries = inventory.stores.get(key, [])
    return (entries[0].source, entries[0].target) if entries else ("", "")


def missing_on_node_findings(ctx: Context) -> Iterable[Finding]:
    """A node lacks a certificate its purpose needs (the current ConfigTemplate.xml's thumbprint)."""
    pair = template_pair(ctx)
    inventory = node_inventory(ctx)
    for role, role_pair in sorted(pair.pairs.items()):
        for node in inventory.needing(role):
            key = node_key(node.name)
            if not inventory.covered(key):
                continue
            for thumbprint in role_pair.new:
                if inventory.find(key, thumbprint):
                    continue
                source, target = _origin(inventory, key)
                users = _using(ctx, thumbprint)
                tail = f"; {users} already uses it" if users else "; install it before the configuration uses it"
                yield Finding(
                    "cert-missing-on-node",
                    _severity(ctx, thumbprint),
                    f"{node.name} has no {role} certificate {label(ctx, thumbprint)} in LocalMachine\\My: "
                    f"{node.purpose} nodes need it{tail}",
                    role=role,
                    thumbprint=thumbprint,
                    node=node.name,
                    source=source,
                    target=target,
                    step=STEP,
                )


def private_key_findings(ctx: Context) -> Iterable[Finding]:
    """A node holds a certificate its role needs, but without the private key."""
    inventory = node_inventory(ctx)
    for key, entries in sorted(inventory.stores.items()):
        node = inventory.nodes.get(key)
        for entry in entries:
            for obs in entry.certificates:
                roles = ctx.roles.get(obs.thumbprint, ())
                if node is not None:
                    roles = tuple(r for r in roles if r in node.roles)
                if obs.has_private_key is not False or not roles or obs.store.lower() != "localmachine\\my":
                    continue
                yield Finding(
                    "private-key-missing",
                    _severity(ctx, obs.thumbprint),
                    f"{entry.node} holds {roles[0]} certificate {label(ctx, obs.thumbprint)} without its private "
                    f"key ({obs.location or entry.source}): import the PFX with its key (exportable, "
                    f"ACL for the service accounts), not the .cer",
                    role=roles[0],
                    thumbprint=obs.thumbprint,
                    node=entry.node,
                    source=entry.source,
                    target=entry.target,
                    step=STEP,
                )


def cng_key_findings(ctx: Context) -> Iterable[Finding]:
    """A Service Fabric or AXSF certificate whose private key lives in a CNG key storage provider."""
    wanted = set(ctx.settings.rules.csp_key_roles)
    inventory = node_inventory(ctx)
    for _key, entries in sorted(inventory.stores.items()):
        for entry in entries:
            for obs in entry.certificates:
                roles = [r for r in ctx.roles.get(obs.thumbprint, ()) if r in wanted]
                if not roles or (obs.key_provider or "").lower() != "cng":
                    continue
                yield Finding(
                    "cng-key-on-sf-cert",
                    _severity(ctx, obs.thumbprint),
                    f"{entry.node} holds {roles[0]} certificate {label(ctx, obs.thumbprint)} with a CNG private "
                    f"key; Service Fabric and AXSF need a legacy CSP key: re-import the PFX with "
                    f'certutil -csp "Microsoft Enhanced RSA and AES Cryptographic Provider" -importPFX',
                    role=roles[0],
                    thumbprint=obs.thumbprint,
                    node=entry.node,
                    source=entry.source,
                    target=entry.target,
                    step=STEP,
                )
