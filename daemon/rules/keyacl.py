"""Private-key access: the service accounts a role's certificate serves must be able to read its key.

A certificate imported without the Read grant for the gMSA (AXSF) or NETWORK SERVICE (Service Fabric)
breaks the service at the switch with "Keyset does not exist". The runbook's Configure-PreReqs step
grants it; this rule checks the grant on every node the WinRM inventory read, before the switch.
Only direct grants are seen: an account that reads the key through a group it belongs to is reported
missing (the inventory does not expand group membership).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from collectors.configtemplate import ConfigTemplate
from collectors.model import Finding, Severity
from collectors.winrm.collector import SOURCE as WINRM
from collectors.winrm.collector import NodeFacts
from collectors.winrm.keyacl import CertKeyAccess
from daemon.context import Context, in_use, listing
from daemon.inventory import label, node_inventory, node_key, template_pair

RULE = "private-key-acl-missing"
STEP = "certs-installed"
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


def key_acl_findings(ctx: Context) -> Iterable[Finding]:
    """A node holds a certificate of a role whose service accounts cannot read its private key."""
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
                missing = [str(a) for a in accounts if not a.reads(entry.readers)]
                if not missing:
                    continue
                rotating = role_pair.rotated
                severity = Severity.CRITICAL if rotating or in_use(ctx, thumbprint) else Severity.WARNING
                when = "after the switch to it" if rotating else "when it is used"
                yield Finding(
                    RULE,
                    severity,
                    f"{name}: {listing(missing)} cannot read the private key of {role} certificate "
                    f'{label(ctx, thumbprint)} ({entry.file}); the service fails with "Keyset does not exist" '
                    f"{when}: grant Read on the key (Configure-PreReqs.ps1, or certlm.msc > Manage Private Keys)",
                    role=role,
                    thumbprint=thumbprint,
                    node=name,
                    source=WINRM,
                    target=target,
                    step=STEP,
                )
