"""Private-key access: which accounts of a role cannot read the key of its current certificate on a node.

A certificate imported without the Read grant for the gMSA (AXSF) or NETWORK SERVICE (Service Fabric)
breaks the service at the switch with "Keyset does not exist". The runbook's Configure-PreReqs step
grants it; certmon checks the grant on every node the WinRM inventory read, before the switch.
Only direct grants are seen: an account that reads the key through a group it belongs to is reported
missing (the inventory does not expand group membership).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from collectors.configtemplate import ConfigTemplate
from collectors.winrm.collector import SOURCE as WINRM
from collectors.winrm.collector import NodeFacts
from collectors.winrm.keyacl import CertKeyAccess
from daemon.context import Context, listing, memoized
from daemon.inventory import node_inventory, node_key, template_pair

MY = "localmachine\\my"
# Microsoft "Well-known SIDs": the names shown for the SIDs an operator is most likely to configure.
WELL_KNOWN = {
    "S-1-5-18": "NT AUTHORITY\\SYSTEM",
    "S-1-5-19": "NT AUTHORITY\\LOCAL SERVICE",
    "S-1-5-20": "NT AUTHORITY\\NETWORK SERVICE",
    "S-1-5-32-544": "BUILTIN\\Administrators",
}


@dataclass(frozen=True)
class Account:
    """An account that must read a key: by SID, or by DOMAIN\\name (the domain part may be empty)."""

    sid: str = ""
    name: str = ""

    def __str__(self) -> str:
        if self.sid:
            known = WELL_KNOWN.get(self.sid.upper())
            return f"{known} ({self.sid})" if known else self.sid
        return self.name

    def reads(self, readers: Iterable[tuple[str, str]]) -> bool:
        """True when one of the (SID, account name) readers is this account."""
        for sid, account in readers:
            if self.sid and sid.upper() == self.sid.upper():
                return True
            if self.name and account and _same_name(self.name, account):
                return True
        return False


def _same_name(wanted: str, found: str) -> bool:
    if wanted.lower() == found.lower():
        return True
    # A configured name without a domain matches that account in any domain.
    return "\\" not in wanted and found.rsplit("\\", 1)[-1].lower() == wanted.lower()


def resolve_account(spec: str, template: ConfigTemplate) -> Account | None:
    """A key_readers entry as an account: a SID, DOMAIN\\name, or a ConfigTemplate refName (None if absent)."""
    text = spec.strip()
    if text.upper().startswith("S-1-"):
        return Account(sid=text)
    if "\\" in text:
        return Account(name=text)
    named = template.service_account(text)
    return Account(name=named) if named else None


def _access(ctx: Context) -> dict[tuple[str, str], tuple[str, str, CertKeyAccess]]:
    found: dict[tuple[str, str], tuple[str, str, CertKeyAccess]] = {}
    for target, facts in ctx.snapshot.facts(WINRM, NodeFacts):
        for entry in facts.key_access:
            if entry.store.lower() == MY:
                found[(node_key(facts.node), entry.thumbprint)] = (facts.node, target, entry)
    return found


@dataclass(frozen=True)
class Gap:
    """A certificate on a node whose key some of its role's accounts cannot read."""

    node: str
    target: str
    role: str
    thumbprint: str
    file: str
    missing: tuple[str, ...]
    rotating: bool


@memoized
def key_acl_gaps(ctx: Context) -> list[Gap]:
    """Every current ConfigTemplate.xml certificate, on a node that needs it, with accounts that cannot read it."""
    return list(_gaps(ctx))


def _gaps(ctx: Context) -> Iterable[Gap]:
    pair = template_pair(ctx)
    template = pair.current
    if template is None:
        return
    access = _access(ctx)
    if not access:
        return
    inventory = node_inventory(ctx)
    for role, role_pair in sorted(pair.pairs.items()):
        specs = ctx.settings.rules.key_readers.get(role, [])
        accounts = [a for a in (resolve_account(s, template) for s in specs) if a is not None]
        if not accounts:
            continue
        for node in inventory.needing(role):
            for thumbprint in role_pair.new:
                seen = access.get((node_key(node.name), thumbprint))
                if seen is None or seen[2].error:
                    continue  # not held, or its ACL unread: other findings and problems say so
                name, target, entry = seen
                missing = tuple(str(a) for a in accounts if not a.reads(entry.readers))
                if missing:
                    yield Gap(name, target, role, thumbprint, entry.file, missing, role_pair.rotated)


def unreadable_new_keys(ctx: Context) -> list[str]:
    """`NODE: ROLE THUMBPRINT: key not readable by ACCOUNTS` for the rotated roles' new certificates."""
    return [
        f"{g.node}: {g.role} {g.thumbprint[:8]}: key not readable by {listing(list(g.missing))}"
        for g in key_acl_gaps(ctx)
        if g.rotating
    ]
