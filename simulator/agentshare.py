"""The lab's agent share: the deployment's config.json and Credentials.json, and the CMS values in it.

Credentials.json values are CMS EnvelopedData made with cryptography's PKCS#7 envelope builder
for the encipherment certificate (AES-256-CBC content, RSA key transport, recipients by issuer
and serial number), as Configure-CredentialsJson.ps1 makes them with .NET's EnvelopedCms.
"""

from __future__ import annotations

import base64
import json
import secrets
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.hazmat.primitives.ciphers import algorithms
from cryptography.hazmat.primitives.serialization import Encoding, pkcs7

SHARE_UNC = "\\\\DC1\\D365FFOStorage\\agent"
DEPLOYMENT_FOLDER = ("wp", "Contoso", "StandaloneSetup-123456")
# Which certificate each lab value is encrypted to, mid-rotation: some re-encrypted already, some not.
LAB_CREDENTIALS: tuple[tuple[str, str, tuple[str, ...]], ...] = (
    ("AosPrincipal", "AccountPassword", ("old",)),
    ("AosSqlAuth", "SqlUser", ("new",)),
    ("AosSqlAuth", "SqlPwd", ("old",)),
    ("AosDWAuth", "DWUser", ("old", "new")),
    ("AosDWAuth", "DWPwd", ("old",)),
)


def encrypt_value(plaintext: bytes, recipients: Sequence[x509.Certificate]) -> str:
    """Base64 CMS EnvelopedData of the plaintext for these certificates."""
    builder = pkcs7.PKCS7EnvelopeBuilder().set_data(plaintext)
    builder = builder.set_content_encryption_algorithm(algorithms.AES256)
    for cert in recipients:
        builder = builder.add_recipient(cert)
    return base64.b64encode(builder.encrypt(Encoding.DER, [])).decode("ascii")


def decrypt_value(value: str, candidates: Iterable[tuple[x509.Certificate, rsa.RSAPrivateKey]]) -> bytes:
    """The plaintext, decrypted with the first candidate the value is encrypted to; ValueError when none is."""
    der = base64.b64decode(value)
    for cert, key in candidates:
        try:
            return pkcs7.pkcs7_decrypt_der(der, cert, key, [])
        except ValueError:
            continue
    raise ValueError("The enveloped-data message does not contain the specified recipient.")


def credentials_document(values: Mapping[tuple[str, str], str]) -> dict[str, dict[str, str]]:
    """{"AosPrincipal": {"AccountPassword": "<base64>"}, ...} in the order given."""
    document: dict[str, dict[str, str]] = {}
    for (group, name), value in values.items():
        document.setdefault(group, {})[name] = value
    return document


def write_json(path: Path, document: Any) -> None:
    """JSON as Windows PowerShell writes it for these files: indented, CRLF."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(json.dumps(document, indent=4).replace("\n", "\r\n").encode("utf-8"))


def lab_credentials(certificates: Mapping[str, x509.Certificate]) -> dict[tuple[str, str], str]:
    """The lab's Credentials.json values, encrypted to the 'old' and 'new' encipherment certificates."""
    values = {}
    for group, name, generations in LAB_CREDENTIALS:
        plaintext = f"{group}.{name}:{secrets.token_urlsafe(12)}".encode()
        values[(group, name)] = encrypt_value(plaintext, [certificates[g] for g in generations])
    return values


def deployment_config(server: str, client: str, endpoint: str) -> dict[str, Any]:
    """The agent share's config.json of a deployment, beginning with the serviceFabric block."""
    return {
        "serviceFabric": {
            "connectionEndpoint": endpoint,
            "clusterId": "d365fo-onprem-cluster",
            "certificateSettings": {"serverCertThumbprint": server, "clientCertThumbprint": client},
        },
        "deploymentInfo": {
            "environmentName": "Contoso",
            "deploymentId": "123456",
            "topology": {"aosNodeCount": 3, "orchestratorNodeCount": 3},
        },
        "components": [
            {"name": "AXSF", "version": "10.0.42", "parameters": {"DataEncryptionCertificateThumbprint": ""}},
            {"name": "ReportingService", "version": "10.0.42"},
        ],
    }
