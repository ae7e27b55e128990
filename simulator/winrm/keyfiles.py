"""The private-key files of a simulated node and their access rules, as inventory.ps1's Get-KeyAcl reads them.

node.json may hold `key_acl_default` (the rules of every key file of the node) and `key_acls`
(`{"<thumbprint>": [[SID, account, rights, type], ...]}`, or `{"<thumbprint>": {"error": "<message>"}}`
for a key file the inventory cannot read). Rights are FileSystemRights as PowerShell's `[int]` prints
them (GenericRead is -2147483648), type 0 allow, 1 deny. Without either, a key file carries what a
PFX import by an administrator leaves: SYSTEM and Administrators with FullControl.

`local_groups` (`{"<group SID>": [[SID, DOMAIN\\name, "User"|"Group"], ...]}`) holds the node's local groups as
Get-LocalGroupMember lists them; without it, Administrators holds only the node's built-in Administrator (a
node where Domain Admins was taken out of the local Administrators group). Only groups a key's rules name are
reported (the script asks for those only); a group given as `{"error": "<message>"}` is one
Get-LocalGroupMember fails on (left out of the output).
"""

from __future__ import annotations

import hashlib
import uuid
from typing import Any

# FileSystemRights (System.Security.AccessControl) values as PowerShell's [int] prints them.
FULL_CONTROL = 2032127
READ = 1179785  # Read | Synchronize, what the "Read" permission of the security dialog grants
GENERIC_READ = -2147483648
ALLOW, DENY = 0, 1
SYSTEM = ("S-1-5-18", "NT AUTHORITY\\SYSTEM")
ADMINISTRATORS = ("S-1-5-32-544", "BUILTIN\\Administrators")
ADMINISTRATORS_SID = ADMINISTRATORS[0]
NETWORK_SERVICE = ("S-1-5-20", "NT AUTHORITY\\NETWORK SERVICE")
IMPORTED = [[*SYSTEM, FULL_CONTROL, ALLOW], [*ADMINISTRATORS, FULL_CONTROL, ALLOW]]
PROGRAM_DATA = "C:\\ProgramData\\Microsoft\\Crypto\\"


def machine_guid(node: str) -> str:
    """A stable MachineGuid for a simulated node (the real one is HKLM\\SOFTWARE\\Microsoft\\Cryptography)."""
    return str(uuid.uuid5(uuid.NAMESPACE_DNS, node.lower()))


def key_file(node: str, thumbprint: str, provider_type: int) -> str:
    """Where the node keeps a certificate's private key: RSA\\MachineKeys (CAPI) or Keys (CNG)."""
    # The unique name's shape, <hash>_<MachineGuid>, is what these folders hold on real machines (UNVERIFIED:
    # Microsoft does not document how the hash is computed; the simulator only keeps its shape).
    digest = hashlib.sha1(f"{node}/{thumbprint}".encode(), usedforsecurity=False).hexdigest()
    if provider_type > 0:
        return f"{PROGRAM_DATA}RSA\\MachineKeys\\{digest[:32]}_{machine_guid(node)}"
    return f"{PROGRAM_DATA}Keys\\{digest}_{machine_guid(node)}"


def key_access(facts: dict[str, Any], node: str, thumbprint: str, provider_type: int) -> dict[str, Any]:
    """The `k` object Get-KeyAcl prints for one certificate's key."""
    acls = {str(k).upper(): v for k, v in dict(facts.get("key_acls") or {}).items()}
    rules = acls.get(thumbprint.upper(), facts.get("key_acl_default", IMPORTED))
    if isinstance(rules, dict):
        return {"e": str(rules.get("error", "Access is denied"))}
    return {"f": key_file(node, thumbprint, provider_type), "a": [list(rule) for rule in rules]}


def default_local_groups(node: str) -> dict[str, list[list[str]]]:
    """Administrators with the node's built-in Administrator (RID 500)."""
    # The machine SID's sub-authorities are made up from the node's name (real ones are random).
    parts = uuid.uuid5(uuid.NAMESPACE_DNS, node.lower()).int
    machine = f"S-1-5-21-{parts & 0xFFFFFFF}-{(parts >> 32) & 0xFFFFFFF}-{(parts >> 64) & 0xFFFFFFF}"
    return {ADMINISTRATORS_SID: [[f"{machine}-500", f"{node.upper()}\\Administrator", "User"]]}


def local_groups(facts: dict[str, Any], node: str, named: set[str]) -> dict[str, list[list[str]]]:
    """The `g` object: members of the local groups among the SIDs the key rules name."""
    groups = facts.get("local_groups")
    if not isinstance(groups, dict):
        groups = default_local_groups(node)
    found: dict[str, list[list[str]]] = {}
    for sid, members in groups.items():
        if str(sid).upper() in named and isinstance(members, list):
            found[str(sid)] = [[str(m[0]), str(m[1]), str(m[2])] for m in members]
    return found
