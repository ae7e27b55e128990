"""node.json in a lab node folder: what a real node's registry and key storage would report.

`{"sql_instances": {"MSSQLSERVER": "<thumbprint>"}, "key_providers": {"<thumbprint>": "<provider>"}}`:
the TLS certificate each SQL Server instance is configured with, and the provider holding a
certificate's private key when it is not the default CAPI one. certfolder ignores the file.

A provider is what the certificate's CRYPT_KEY_PROV_INFO holds: a name (pwszProvName) and a type
(dwProvType, 0 for a CNG key storage provider). A name alone takes its type from PROVIDER_TYPES;
`{"provider": "<name>", "type": <n>}` says both (a third-party CSP or KSP).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

NODE_FILE = "node.json"
CAPI_DEFAULT = "Microsoft Enhanced RSA and AES Cryptographic Provider"
CNG_DEFAULT = "Microsoft Software Key Storage Provider"
# Microsoft's built-in providers and their dwProvType (Win32 docs "Microsoft Cryptographic Service
# Providers", "Cryptographic Provider Types", NCryptOpenStorageProvider): CNG key storage providers are 0.
PROVIDER_TYPES = {
    "microsoft base cryptographic provider v1.0": 1,
    "microsoft strong cryptographic provider": 1,
    "microsoft enhanced cryptographic provider v1.0": 1,
    "microsoft rsa schannel cryptographic provider": 12,
    "microsoft enhanced rsa and aes cryptographic provider": 24,
    "microsoft base smart card crypto provider": 1,
    CNG_DEFAULT.lower(): 0,
    "microsoft smart card key storage provider": 0,
    "microsoft platform crypto provider": 0,
    "microsoft passport key storage provider": 0,
}


def read_node_facts(folder: Path) -> dict[str, Any]:
    """The node's facts, or none."""
    try:
        document = json.loads((folder / NODE_FILE).read_text(encoding="utf-8"))
    except FileNotFoundError:
        return {}
    return document if isinstance(document, dict) else {}


def update_node_facts(folder: Path, **facts: object) -> None:
    """Merge keys into the node's facts."""
    document = read_node_facts(folder)
    document.update(facts)
    (folder / NODE_FILE).write_text(json.dumps(document, indent=2), encoding="utf-8")


def key_provider(value: object) -> tuple[str, int] | None:
    """(name, dwProvType) of a key_providers entry, or None when it names an unknown provider without a type."""
    if isinstance(value, dict):
        name, kind = value.get("provider"), value.get("type")
        if isinstance(name, str) and isinstance(kind, int) and not isinstance(kind, bool) and kind >= 0:
            return name, kind
        return None
    if isinstance(value, str) and value.lower() in PROVIDER_TYPES:
        return value, PROVIDER_TYPES[value.lower()]
    return None


def set_key_provider(folder: Path, thumbprint: str, provider: str, provider_type: int | None = None) -> None:
    """Say which provider holds a certificate's private key on the node (type needed for an unlisted one)."""
    providers = dict(read_node_facts(folder).get("key_providers") or {})
    providers[thumbprint] = provider if provider_type is None else {"provider": provider, "type": provider_type}
    update_node_facts(folder, key_providers=providers)


def set_sql_certificate(folder: Path, instance: str, thumbprint: str) -> None:
    """Configure a SQL Server instance's TLS certificate (SuperSocketNetLib\\Certificate)."""
    instances = dict(read_node_facts(folder).get("sql_instances") or {})
    instances[instance] = thumbprint
    update_node_facts(folder, sql_instances=instances)


def set_key_acl(folder: Path, thumbprint: str | None, rules: list[list[object]] | dict[str, str]) -> None:
    """The access rules of a certificate's key file (thumbprint None: of every key file of the node)."""
    if thumbprint is None:
        update_node_facts(folder, key_acl_default=rules)
        return
    acls = dict(read_node_facts(folder).get("key_acls") or {})
    acls[thumbprint] = rules
    update_node_facts(folder, key_acls=acls)


def key_acl(folder: Path, thumbprint: str) -> list[list[object]]:
    """The access rules the node reports for a certificate's key file (its own, else the node's default)."""
    facts = read_node_facts(folder)
    rules = dict(facts.get("key_acls") or {}).get(thumbprint, facts.get("key_acl_default"))
    return [list(r) for r in rules] if isinstance(rules, list) else []
