"""Configure-CredentialsJson.ps1 -Action Rotate, as a simulated AOS node runs it.

The node recognises exactly the text certmon's `ApprovedCommand` sends for that script (the
script path comes from the node's node.json), and nothing else. Like the real script it reads
ConfigTemplate.xml for the encipherment certificate and the agent share, decrypts every
Credentials.json value with a private key from the node's LocalMachine\\My store, and
re-encrypts it to the new certificate; when a value cannot be decrypted nothing is written.

node.json: `{"credentials_json": {"script": "C:\\\\D365\\\\Infrastructure\\\\Configure-CredentialsJson.ps1",
"paths": {"C:\\\\D365\\\\Infrastructure": "../../Infrastructure", "\\\\\\\\DC1\\\\...\\\\agent": "../../agent-share"}}}`
maps Windows paths onto lab folders (relative to the node folder). A UNC path is another machine:
over WinRM that is a second hop, which only works when the node's facts say the account's
credentials can be delegated (`"delegation": true`: CredSSP or Kerberos delegation configured);
otherwise the share refuses it as Windows does ("Access to the path '...' is denied.").
"""

from __future__ import annotations

import hashlib
import json
import re
from pathlib import Path
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.hazmat.primitives.serialization import Encoding, pkcs12

from collectors.configtemplate import parse_config_template
from collectors.errors import CollectorError
from collectors.model import Generation
from collectors.winrm.command import ApprovedCommand
from simulator.agentshare import decrypt_value, encrypt_value, write_json
from simulator.winrm import nodetemp
from simulator.winrm.nodefile import read_node_facts

SCRIPT_NAME = "configure-credentialsjson.ps1"
_INVOCATION = re.compile(r"^& '((?:[^']|'')*)' -ConfigurationFilePath '((?:[^']|'')*)' -Action '((?:[^']|'')*)'$", re.M)


class ScriptFailure(Exception):
    """What the script writes to its error stream before exiting 1."""


def _unquote(text: str) -> str:
    return text.replace("''", "'")


def match(script: str, node_facts: dict[str, Any], node_root: Path | None = None) -> tuple[str, str] | None:
    """(ConfigurationFilePath, Action) when the script is exactly the approved Configure-CredentialsJson call.

    The script is the installed one, or a copy of it in the account's temporary folder (same bytes).
    """
    configured = str(dict(node_facts.get("credentials_json") or {}).get("script", ""))
    found = _INVOCATION.search(script)
    if not configured or found is None:
        return None
    path, config, action = (_unquote(g) for g in found.groups())
    if path.lower() != configured.lower() and not _is_copy(node_root, node_facts, path, configured):
        return None
    expected = ApprovedCommand(path, (("ConfigurationFilePath", config), ("Action", action))).script_text()
    return (config, action) if script == expected else None


def _is_copy(node_root: Path | None, facts: dict[str, Any], path: str, configured: str) -> bool:
    """True when `path` is a file of the temporary folder with the installed script's name and bytes."""
    if node_root is None or path.rsplit("\\", 1)[-1].lower() != SCRIPT_NAME:
        return False
    copy = nodetemp.local(node_root, facts, path)
    try:
        installed = _local(node_root, configured, facts)
        return copy is not None and copy.is_file() and copy.read_bytes() == installed.read_bytes()
    except (ScriptFailure, OSError):
        return False


def _local(node_root: Path, windows_path: str, facts: dict[str, Any]) -> Path:
    in_temp = nodetemp.local(node_root, facts, windows_path)
    if in_temp is not None:
        if not in_temp.exists():
            raise ScriptFailure(f"Cannot find path '{windows_path}' because it does not exist.")
        return in_temp
    settings = dict(facts.get("credentials_json") or {})
    if windows_path.startswith("\\\\") and settings.get("delegation") is not True:
        raise ScriptFailure(f"Access to the path '{windows_path}' is denied.")
    paths = dict(settings.get("paths") or {})
    lowered = windows_path.lower()
    for prefix, folder in sorted(paths.items(), key=lambda item: -len(item[0])):
        if lowered == prefix.lower() or lowered.startswith(prefix.lower().rstrip("\\") + "\\"):
            rest = windows_path[len(prefix.rstrip("\\")) :].lstrip("\\")
            return (node_root / folder).joinpath(*[p for p in rest.split("\\") if p]).resolve()
    raise ScriptFailure(f"Cannot find path '{windows_path}' because it does not exist.")


def _store_keys(node_root: Path, password: bytes | None) -> dict[str, tuple[x509.Certificate, rsa.RSAPrivateKey]]:
    """Certificates of LocalMachine\\My (the node folder's top level) that come with an RSA private key."""
    found = {}
    for path in sorted(node_root.glob("*.pfx")):
        try:
            key, cert, _ = pkcs12.load_key_and_certificates(path.read_bytes(), password)
        except ValueError:
            continue
        if cert is not None and isinstance(key, rsa.RSAPrivateKey):
            digest = hashlib.sha1(cert.public_bytes(Encoding.DER), usedforsecurity=False).hexdigest().upper()
            found[digest] = (cert, key)
    return found


def rotate(node_root: Path, password: bytes | None, configuration_file: str) -> str:
    """Re-encrypt Credentials.json to the template's encipherment certificate; returns the script's output."""
    facts = read_node_facts(node_root)
    template_path = _local(node_root, configuration_file, facts)
    try:
        template = parse_config_template(template_path.read_bytes(), configuration_file, Generation.NEW)
    except (OSError, CollectorError) as err:
        raise ScriptFailure(f"Cannot read {configuration_file}: {err}") from err
    thumbprints = template.thumbprints("ServiceFabricEncryption")
    share = template.share("agent")
    if not thumbprints or not share:
        raise ScriptFailure(f"{configuration_file} names no encipherment certificate or agent share.")
    keys = _store_keys(node_root, password)
    if thumbprints[0] not in keys:
        raise ScriptFailure(f"Certificate {thumbprints[0]} was not found in Cert:\\LocalMachine\\My.")
    new_cert = keys[thumbprints[0]][0]
    credentials_unc = share.rstrip("\\") + "\\Credentials\\Credentials.json"
    credentials = _local(node_root, credentials_unc, facts)
    try:
        document = json.loads(credentials.read_text(encoding="utf-8-sig"))
    except (OSError, ValueError) as err:
        raise ScriptFailure(f"Cannot read {credentials_unc}: {err}") from err
    count = 0
    for group in document.values():
        for name, value in list(group.items()):
            try:
                plaintext = decrypt_value(value, keys.values())
            except ValueError as err:
                raise ScriptFailure(f"{name}: {err}") from err
            group[name] = encrypt_value(plaintext, [new_cert])
            count += 1
    write_json(credentials, document)
    return f"Re-encrypted {count} values of {credentials_unc} with certificate {thumbprints[0]}.\r\n"
