"""Configuration JSON as the simulated cluster writes it: PascalCase member names, like Service Fabric's own.

Service Fabric's Upgrade Orchestration Service serialises its configuration model classes with
Newtonsoft's default settings: member names are the PascalCase property names, nulls are left
out, indentation is two spaces (microsoft/service-fabric, UpgradeOrchestrationMessageProcessor).
"""

from __future__ import annotations

import json
from typing import Any

from collectors.clusterconfig import member


def pascal_case(value: Any) -> Any:
    """A configuration document with every member name's first letter upper-cased, as the cluster writes it.

    `metadata` members (comments in Microsoft's sample files) have no place in the service's model
    and are left out, as are nulls.
    """
    if isinstance(value, dict):
        return {
            key[:1].upper() + key[1:]: pascal_case(item)
            for key, item in value.items()
            if key.lower() != "metadata" and item is not None
        }
    if isinstance(value, list):
        return [pascal_case(item) for item in value]
    return value


def pascal_text(document: Any) -> str:
    """The document as the cluster returns it: PascalCase, indented with two spaces (Newtonsoft's Indented)."""
    return json.dumps(pascal_case(document), indent=2)


def certificate_information(document: dict[str, Any]) -> dict[str, Any]:
    """Properties.Security.CertificateInformation of a configuration document, whatever its casing."""
    properties = member(document, "Properties") or {}
    security = member(properties, "Security") or {} if isinstance(properties, dict) else {}
    info = member(security, "CertificateInformation") if isinstance(security, dict) else None
    return dict(pascal_case(info)) if isinstance(info, dict) else {}
