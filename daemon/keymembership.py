"""Can an account read a key through a group? Local groups from the node, well-known groups from Microsoft's docs.

A key file's access rules name identities: accounts and groups. An account reads the key when a rule
names it, or names a group it belongs to. What the node inventory tells (Get-LocalGroupMember of every
local group the rules name) and what Microsoft documents decides it:

* Everyone (S-1-1-0) "includes all users" (Microsoft, "Well-known SIDs"): every account reads.
* The LocalSystem account's token "includes the NT AUTHORITY\\SYSTEM and BUILTIN\\Administrators SIDs"
  (Microsoft, "LocalSystem Account"): SYSTEM reads through Administrators (S-1-5-32-544).
* Authenticated Users (S-1-5-11): a domain account (the gMSA) logs on authenticated, so it reads.
  UNVERIFIED for the service SIDs (SYSTEM, LOCAL SERVICE, NETWORK SERVICE): unknown for them.
* A local group the node listed: its direct members; a member that is itself a group is followed when
  it is a well-known group above or another listed local group, else it is unknown (a domain group such
  as CONTOSO\\Domain Admins: its members are in Active Directory, which certmon does not read).
* SYSTEM, LOCAL SERVICE, NETWORK SERVICE and the other configured service accounts are accounts, not
  groups: nobody else reads through them. Any other identity (a domain group, a well-known group not
  listed here, an account certmon cannot classify) makes the answer unknown, never "missing".
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Protocol

from collectors.winrm.keyacl import LocalGroup

EVERYONE = "S-1-1-0"
CREATOR_OWNER = "S-1-3-0"
AUTHENTICATED_USERS = "S-1-5-11"
SYSTEM = "S-1-5-18"
LOCAL_SERVICE = "S-1-5-19"
NETWORK_SERVICE = "S-1-5-20"
ADMINISTRATORS = "S-1-5-32-544"
SERVICE_SIDS = frozenset({SYSTEM, LOCAL_SERVICE, NETWORK_SERVICE})
# Identities through which nobody else reads (accounts, and CREATOR OWNER, a placeholder of inheritable rules).
NOT_GROUPS = SERVICE_SIDS | {CREATOR_OWNER}
MAX_DEPTH = 3


class Named(Protocol):
    """An account as daemon.keyaccess.Account describes it."""

    @property
    def sid(self) -> str:
        """The account's SID, '' when it is named by DOMAIN\\name."""

    def reads(self, readers: Iterable[tuple[str, str]]) -> bool:
        """True when one of the (SID, account name) readers is this account."""


@dataclass(frozen=True, slots=True)
class Verdict:
    """Whether an account reads a key (None: cannot be determined) and how, or what could not be expanded."""

    reads: bool | None
    detail: str


def _label(sid: str, name: str) -> str:
    return name or sid


def key_readable(
    account: Named,
    readers: Iterable[tuple[str, str]],
    groups: Mapping[str, LocalGroup],
    accounts: Iterable[Named],
) -> Verdict:
    """Can `account` read a key whose (SID, name) readers are given, on a node with these local groups?

    `groups` are keyed by upper-case SID; `accounts` are the other configured service accounts: a reader
    that is one of them is an account, not a group.
    """
    readers = tuple(readers)
    if account.reads(readers):
        return Verdict(True, "granted directly")
    expansion = _Expansion(account, groups, tuple(accounts))
    undetermined: list[str] = []
    for sid, name in readers:
        reads, why = expansion.through(sid, name, 0)
        if reads:
            return Verdict(True, f"through {_label(sid, name)}{why}")
        if reads is None:
            undetermined.append(why)
    if undetermined:
        return Verdict(None, "; ".join(dict.fromkeys(undetermined)))
    return Verdict(False, "")


@dataclass(frozen=True, slots=True)
class _Expansion:
    account: Named
    groups: Mapping[str, LocalGroup]
    others: tuple[Named, ...]

    def through(self, sid: str, name: str, depth: int) -> tuple[bool | None, str]:
        """Does the identity (SID, name) of a rule hold the account? None: cannot tell (the text says why)."""
        key = sid.upper()
        own = self.account.sid.upper()
        if key == EVERYONE:
            return True, ""
        if key == AUTHENTICATED_USERS:
            if own in SERVICE_SIDS:
                return None, f"{_label(sid, name)} (whether it holds {own} is not documented)"
            return True, ""
        if key == ADMINISTRATORS and own == SYSTEM:
            return True, ""
        if key in NOT_GROUPS:
            return False, ""
        group = self.groups.get(key)
        if group is not None:
            return self.in_group(_label(sid, name), group, depth)
        if any(other.reads(((sid, name),)) for other in self.others):
            return False, ""  # another configured service account
        return None, f"{_label(sid, name)} (a group or account the node did not list)"

    def in_group(self, label: str, group: LocalGroup, depth: int) -> tuple[bool | None, str]:
        """Is the account a member of a listed local group, directly or through its member groups?"""
        if self.account.reads((m.sid, m.name) for m in group.members):
            return True, ""
        undetermined = []
        for member in group.members:
            if not member.is_group:
                continue
            if depth >= MAX_DEPTH:
                undetermined.append(f"{_label(member.sid, member.name)} (in {label}; nested too deep)")
                continue
            reads, why = self.through(member.sid, member.name, depth + 1)
            if reads:
                return True, f" ({_label(member.sid, member.name)}{why})"
            if reads is None:
                undetermined.append(f"{why} in {label}")
        if undetermined:
            return None, "; ".join(undetermined)
        return False, ""
