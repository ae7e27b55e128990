"""node.json in a lab node folder: what a real node's registry and key storage would report.

`{"sql_instances": {"MSSQLSERVER": "<thumbprint>"}, "key_providers": {"<thumbprint>": "<provider>"}}`:
the TLS certificate each SQL Server instance is configured with, and the provider holding a
certificate's private key when it is not the default CAPI one. certfolder ignores the file.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

NODE_FILE = "node.json"
CAPI_DEFAULT = "Microsoft Enhanced RSA and AES Cryptographic Provider"
CNG_DEFAULT = "Microsoft Software Key Storage Provider"


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


def set_key_provider(folder: Path, thumbprint: str, provider: str) -> None:
    """Say which provider holds a certificate's private key on the node."""
    providers = dict(read_node_facts(folder).get("key_providers") or {})
    providers[thumbprint] = provider
    update_node_facts(folder, key_providers=providers)


def set_sql_certificate(folder: Path, instance: str, thumbprint: str) -> None:
    """Configure a SQL Server instance's TLS certificate (SuperSocketNetLib\\Certificate)."""
    instances = dict(read_node_facts(folder).get("sql_instances") or {})
    instances[instance] = thumbprint
    update_node_facts(folder, sql_instances=instances)
