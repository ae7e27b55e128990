"""Private-key access: which accounts of a role cannot read the key of its current certificate on a node.

A certificate imported without the Read grant for the gMSA (AXSF) or NETWORK SERVICE (Service Fabric)
breaks the service at the switch with "Keyset does not exist". The runbook's Configure-PreReqs step
grants it; certmon checks the grant on every node the WinRM inventory read, before the switch.
An account that reads the key through a group counts as reading it when the node's local groups (listed
by the inventory) or Microsoft's well-known groups show it; where membership cannot be determined (a
domain group, a group the node could not list) the account is "unknown", never "missing"
(daemon.keymembership).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from collectors.configtemplate import ConfigTemplate
from collectors.winrm.collector import SOURCE as WINRM
from collectors.winrm.collector import NodeFacts
from collectors.winrm.keyacl import CertKeyAccess, LocalGroup
from daemon.context import Context, listing, memoized
from daemon.inventory import node_inventory, node_key, template_pair
from daemon.keymembership import key_readable

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


Groups = dict[str, LocalGroup]


def _access(ctx: Context) -> dict[tuple[str, str], tuple[str, str, CertKeyAccess, Groups]]:
    found: dict[tuple[str, str], tuple[str, str, CertKeyAccess, Groups]] = {}
    for target, facts in ctx.snapshot.facts(WINRM, NodeFacts):
        groups = {g.sid.upper(): g for g in facts.local_groups}
        for entry in facts.key_access:
            if entry.store.lower() == MY:
                found[(node_key(facts.node), entry.thumbprint)] = (facts.node, target, entry, groups)
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
    #: accounts whose access cannot be determined, each with the groups that could not be expanded
    unknown: tuple[str, ...] = ()


@memoized
def key_acl_gaps(ctx: Context) -> list[Gap]:
    """Every current ConfigTemplate.xml certificate, on a node that needs it, with accounts that cannot (or may
    not) read it."""
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
    configured = {
        a
        for specs in ctx.settings.rules.key_readers.values()
        for a in (resolve_account(s, template) for s in specs)
        if a is not None
    }
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
                name, target, entry, groups = seen
                missing: list[str] = []
                unknown: list[str] = []
                for account in accounts:
                    verdict = key_readable(account, entry.readers, groups, configured - {account})
                    if verdict.reads is False:
                        missing.append(str(account))
                    elif verdict.reads is None:
                        unknown.append(f"{account} (only possibly through {verdict.detail})")
                if missing or unknown:
                    yield Gap(
                        name, target, role, thumbprint, entry.file, tuple(missing), role_pair.rotated, tuple(unknown)
                    )


def unreadable_new_keys(ctx: Context) -> list[str]:
    """`NODE: ROLE THUMBPRINT: key not readable by ACCOUNTS` for the rotated roles' new certificates."""
    return [
        f"{g.node}: {g.role} {g.thumbprint[:8]}: key not readable by {listing(list(g.missing))}"
        for g in key_acl_gaps(ctx)
        if g.rotating and g.missing
    ]


def unverified_new_keys(ctx: Context) -> list[str]:
    """`NODE: ROLE THUMBPRINT: cannot tell whether ACCOUNTS read the key` for the rotated roles' new certificates."""
    return [
        f"{g.node}: {g.role} {g.thumbprint[:8]}: cannot tell whether {'; '.join(g.unknown)} can read the key"
        for g in key_acl_gaps(ctx)
        if g.rotating and g.unknown
    ]
