"""The private-key files of a simulated node and their access rules, as inventory.ps1's Get-KeyAcl reads them.

node.json may hold `key_acl_default` (the rules of every key file of the node) and `key_acls`
(`{"<thumbprint>": [[SID, account, rights, type], ...]}`, or `{"<thumbprint>": {"error": "<message>"}}`
for a key file the inventory cannot read). Rights are FileSystemRights as PowerShell's `[int]` prints
them (GenericRead is -2147483648), type 0 allow, 1 deny. Without either, a key file carries what a
PFX import by an administrator leaves: SYSTEM and Administrators with FullControl.
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
