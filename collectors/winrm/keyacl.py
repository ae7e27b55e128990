"""Who may read a certificate's private key: the access rules of its key file, as inventory.ps1 reports them.

The script lists every access rule of the key file (CAPI: `%ProgramData%\\Microsoft\\Crypto\\RSA\\MachineKeys\\
<CspKeyContainerInfo.UniqueKeyContainerName>`, CNG: `%ProgramData%\\Microsoft\\Crypto\\Keys\\<CngKey.UniqueName>`)
as `[SID, account name, FileSystemRights as a signed 32-bit integer, AccessControlType (0 allow, 1 deny)]`.
Reading is decided here: an allow rule with FILE_READ_DATA, GENERIC_READ or GENERIC_ALL (which FullControl,
Read, ReadAndExecute and GenericRead all carry), for a SID no deny rule refuses the same.

The script also lists the members of every local group those rules name (`g`: `{"<group SID>": [[SID, name,
ObjectClass], ...]}`, from Get-LocalGroupMember), so that daemon.keyaccess can tell who reads through a group.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from collectors.errors import CollectorError, Reason

# winnt.h access mask bits (Win32 "File Security and Access Rights", "ACCESS_MASK").
FILE_READ_DATA = 0x1
GENERIC_ALL = 0x10000000
GENERIC_READ = 0x80000000
READ_BITS = FILE_READ_DATA | GENERIC_ALL | GENERIC_READ
ALLOW, DENY = 0, 1
MAX_RULES = 64
MAX_TEXT = 512
MAX_GROUPS = 64
MAX_MEMBERS = 1000


@dataclass(frozen=True, slots=True)
class AccessRule:
    """One access rule of a key file."""

    sid: str
    account: str
    rights: int
    deny: bool

    @property
    def reads(self) -> bool:
        """True when the rule's rights include reading the key file."""
        return bool(self.rights & READ_BITS)


@dataclass(frozen=True, slots=True)
class KeyAccess:
    """The key file of a certificate and its access rules, or why they could not be read."""

    file: str
    rules: tuple[AccessRule, ...]
    error: str = ""

    def readers(self) -> tuple[tuple[str, str], ...]:
        """(SID, account name) of every identity allowed to read the key and not denied it, by SID."""
        denied = {r.sid.upper() for r in self.rules if r.deny and r.reads}
        seen: dict[str, tuple[str, str]] = {}
        for rule in self.rules:
            if rule.reads and not rule.deny and rule.sid.upper() not in denied:
                seen.setdefault(rule.sid.upper(), (rule.sid, rule.account))
        return tuple(seen.values())


def _fail(node: str, message: str) -> CollectorError:
    return CollectorError(node, Reason.BAD_OUTPUT, message)


def _text(node: str, value: Any, where: str) -> str:
    if type(value) is not str or len(value) > MAX_TEXT:
        raise _fail(node, f"inventory output field {where} is not a string of at most {MAX_TEXT} characters")
    return value


def _rule(node: str, item: Any, where: str) -> AccessRule:
    if type(item) is not list or len(item) != 4:
        raise _fail(node, f"inventory output field {where} is not [SID, account, rights, type]")
    sid, account, rights, kind = item
    if type(rights) is not int or not -(2**31) <= rights < 2**32:
        raise _fail(node, f"inventory output field {where} has rights that are not a 32-bit access mask")
    if kind not in (ALLOW, DENY) or type(kind) is not int:
        raise _fail(node, f"inventory output field {where} has access type {kind!r}, expected 0 (allow) or 1 (deny)")
    return AccessRule(_text(node, sid, where), _text(node, account, where), rights & 0xFFFFFFFF, kind == DENY)


def parse_key_access(node: str, value: Any, where: str) -> KeyAccess:
    """The `k` object of a certificate entry: {f: file, a: rules} or {e: why not}; bad_output otherwise."""
    if type(value) is not dict:
        raise _fail(node, f"inventory output field {where} is not an object")
    if "e" in value:
        return KeyAccess("", (), _text(node, value["e"], f"{where}.e") or "no error text")
    rules = value.get("a")
    if type(rules) is not list:
        raise _fail(node, f"inventory output field {where}.a is not a list")
    if len(rules) > MAX_RULES:
        raise _fail(node, f"inventory output field {where}.a has {len(rules)} access rules, more than {MAX_RULES}")
    file = value.get("f")
    if type(file) is str and len(file) <= MAX_TEXT:
        # The common case in one pass (every key of every node, each cycle its output changed).
        fast = [_quick_rule(item) for item in rules]
        if None not in fast:
            return KeyAccess(file, tuple(r for r in fast if r is not None))
    parsed = tuple(_rule(node, item, f"{where}.a[{i}]") for i, item in enumerate(rules))
    return KeyAccess(_text(node, file, f"{where}.f"), parsed)


def _quick_rule(item: Any) -> AccessRule | None:
    if type(item) is list and len(item) == 4:
        sid, account, rights, kind = item
        if (
            type(sid) is str
            and type(account) is str
            and type(rights) is int
            and type(kind) is int
            and len(sid) <= MAX_TEXT
            and len(account) <= MAX_TEXT
            and -(2**31) <= rights < 2**32
            and kind in (ALLOW, DENY)
        ):
            return AccessRule(sid, account, rights & 0xFFFFFFFF, kind == DENY)
    return None


@dataclass(frozen=True, slots=True)
class GroupMember:
    """A member of a local group: SID, DOMAIN\\name, and whether it is itself a group (ObjectClass Group)."""

    sid: str
    name: str
    is_group: bool


@dataclass(frozen=True, slots=True)
class LocalGroup:
    """A local group named by some key's access rules and its direct members."""

    sid: str
    members: tuple[GroupMember, ...]


def parse_local_groups(node: str, value: Any) -> tuple[LocalGroup, ...]:
    """The `g` object: local group SID -> [[SID, name, ObjectClass], ...]; bad_output when malformed."""
    if type(value) is not dict:
        raise _fail(node, "inventory output field $.g is not an object")
    if len(value) > MAX_GROUPS:
        raise _fail(node, f"inventory output field $.g names {len(value)} groups, more than {MAX_GROUPS}")
    groups = []
    for sid, members in value.items():
        where = f"$.g[{str(sid)[:64]!r}]"
        _text(node, sid, where)
        if type(members) is not list or len(members) > MAX_MEMBERS:
            raise _fail(node, f"inventory output field {where} is not a list of at most {MAX_MEMBERS} members")
        parsed = []
        for index, item in enumerate(members):
            if type(item) is not list or len(item) != 3:
                raise _fail(node, f"inventory output field {where}[{index}] is not [SID, name, ObjectClass]")
            member_sid, name, kind = (_text(node, part, f"{where}[{index}]") for part in item)
            parsed.append(GroupMember(member_sid, name, kind.lower() == "group"))
        groups.append(LocalGroup(sid, tuple(parsed)))
    return tuple(groups)


@dataclass(frozen=True, slots=True)
class CertKeyAccess:
    """Who may read the private key of one certificate in one store of a node ('' error: the ACL was read)."""

    store: str
    thumbprint: str
    subject_cn: str
    file: str
    readers: tuple[tuple[str, str], ...]
    error: str = ""


def key_reader_samples(node: str, entries: tuple[CertKeyAccess, ...]) -> list[tuple[tuple[str, ...], float]]:
    """certmon_cert_key_readers_info: one sample per (certificate, identity allowed to read its key)."""
    return [
        (("winrm", node, e.store, e.thumbprint, e.subject_cn, sid, account), 1.0)
        for e in entries
        for sid, account in e.readers
    ]


def key_acl_read_samples(node: str, entries: tuple[CertKeyAccess, ...]) -> list[tuple[tuple[str, ...], float]]:
    """certmon_cert_key_acl_read: 1 when the key file's ACL was read, 0 when not (the error is a problem)."""
    return [(("winrm", node, e.store, e.thumbprint, e.subject_cn), 0.0 if e.error else 1.0) for e in entries]
