"""ClusterConfig.json edits of a thumbprint rotation: stage (new primary, old secondary) and clean up.

Both are targeted edits through `JsonEditor`: only the thumbprint members, the client list and
`clusterConfigurationVersion` change; every other byte of the operator's file stays as it was.

* stage: for the cluster, server and reverse-proxy certificates, the new thumbprint becomes
  `Thumbprint` and the current one `ThumbprintSecondary`; the old admin client stays as
  read-only and the new client is added as admin; the version goes up by one.
* clean up: every `ThumbprintSecondary` and the old client entry are removed; the version goes up.

Staging then cleaning up gives the original structure with the new thumbprints and the version
raised twice (the property test in tests/remediations/test_sfconfig.py).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from collectors.certificate import normalize_thumbprint
from collectors.clusterconfig import CERT_KINDS
from collectors.errors import ThumbprintError
from remediations.errors import RemediationError
from remediations.jsonedit import JsonEditError, JsonEditor, JsonPath
from remediations.plan import ValueChange

INFO: JsonPath = ("properties", "security", "CertificateInformation")
CLIENTS: JsonPath = (*INFO, "ClientCertificateThumbprints")
VERSION: JsonPath = ("clusterConfigurationVersion",)


@dataclass(frozen=True, slots=True)
class SfRotationThumbprints:
    """The thumbprints one rotation moves between: server/cluster certificate and admin client."""

    new_server: str
    new_client: str
    old_client: str


def bump_version(version: str) -> str:
    """The next configuration version: the last number goes up by one ("2.0.1" -> "2.0.2")."""
    match = re.fullmatch(r"(.*?)(\d+)", version.strip())
    if match is None:
        raise RemediationError(f"clusterConfigurationVersion {version!r} does not end in a number; cannot raise it")
    return f"{match.group(1)}{int(match.group(2)) + 1}"


def _thumbprint(value: Any) -> str:
    if not isinstance(value, str) or not value.strip():
        return ""
    try:
        return normalize_thumbprint(value)
    except ThumbprintError:
        return value


def _certificate_paths(editor: JsonEditor) -> list[tuple[str, JsonPath]]:
    """(key, path) of the thumbprint-form cluster, server and reverse-proxy certificates present."""
    info = editor.get(INFO) if editor.has(INFO) else {}
    found = []
    for key, _kind in CERT_KINDS:
        entry = info.get(key) if isinstance(info, dict) else None
        if isinstance(entry, dict) and entry.get("Thumbprint"):
            found.append((key, (*INFO, key)))
    return found


def _clients(editor: JsonEditor) -> list[Any]:
    value = editor.get(CLIENTS) if editor.has(CLIENTS) else []
    if not isinstance(value, list):
        raise RemediationError(f"{editor.name}: ClientCertificateThumbprints is not an array")
    return value


def _bump(editor: JsonEditor, changes: list[ValueChange]) -> None:
    current = editor.get(VERSION) if editor.has(VERSION) else None
    if not isinstance(current, str):
        raise RemediationError(f"{editor.name}: clusterConfigurationVersion is missing or not a string")
    following = bump_version(current)
    editor.set(VERSION, following)
    changes.append(ValueChange("clusterConfigurationVersion", current, following))


def stage(data: bytes, rotation: SfRotationThumbprints, name: str) -> tuple[bytes, tuple[ValueChange, ...]]:
    """The staged configuration's bytes and the values that changed; RemediationError when it cannot be staged."""
    try:
        editor = JsonEditor(data, name)
        changes: list[ValueChange] = []
        certificates = _certificate_paths(editor)
        if not certificates:
            raise RemediationError(f"{name}: no certificate is declared by thumbprint; nothing to stage")
        for key, path in certificates:
            entry = editor.get(path)
            primary = _thumbprint(entry.get("Thumbprint"))
            secondary = _thumbprint(entry.get("ThumbprintSecondary"))
            if secondary:
                raise RemediationError(
                    f"{name}: {key} still has ThumbprintSecondary {secondary} from an earlier rotation; "
                    "clean it up first (Service Fabric refuses two certificates to two different certificates)"
                )
            if primary == rotation.new_server:
                raise RemediationError(f"{name}: {key} already uses the new thumbprint {primary} as primary")
            editor.set((*path, "Thumbprint"), rotation.new_server)
            editor.set((*path, "ThumbprintSecondary"), primary)
            changes.append(ValueChange(f"{key}.Thumbprint", primary, rotation.new_server))
            changes.append(ValueChange(f"{key}.ThumbprintSecondary", "", primary))
        clients = _clients(editor)
        olds = _indexes(clients, rotation.old_client)
        if not olds:
            raise RemediationError(f"{name}: the old admin client {rotation.old_client} is not in the client list")
        for index in olds:
            if _get(clients[index], "IsAdmin") is not False:
                editor.set((*CLIENTS, index, "IsAdmin"), False)
                changes.append(ValueChange(f"ClientCertificateThumbprints[{index}].IsAdmin", "true", "false"))
        news = _indexes(clients, rotation.new_client)
        for index in news:
            if _get(clients[index], "IsAdmin") is not True:
                editor.set((*CLIENTS, index, "IsAdmin"), True)
                changes.append(ValueChange(f"ClientCertificateThumbprints[{index}].IsAdmin", "false", "true"))
        if not news:
            editor.append(CLIENTS, {"CertificateThumbprint": rotation.new_client, "IsAdmin": True})
            changes.append(ValueChange("ClientCertificateThumbprints[+]", "", f"{rotation.new_client} (admin)"))
        _bump(editor, changes)
        return editor.to_bytes(), tuple(changes)
    except JsonEditError as err:
        raise RemediationError(str(err)) from err


def cleanup(data: bytes, old_client: str, name: str) -> tuple[bytes, tuple[ValueChange, ...]]:
    """The cleaned configuration's bytes: no ThumbprintSecondary, no old client; (data, ()) when already clean."""
    try:
        editor = JsonEditor(data, name)
        changes: list[ValueChange] = []
        for key, path in _certificate_paths(editor):
            entry = editor.get(path)
            if "ThumbprintSecondary" in entry:
                secondary = _thumbprint(entry.get("ThumbprintSecondary"))
                editor.delete((*path, "ThumbprintSecondary"))
                changes.append(ValueChange(f"{key}.ThumbprintSecondary", secondary or "(empty)", "(removed)"))
        clients = _clients(editor)
        removed = _indexes(clients, old_client)
        for index in reversed(removed):
            editor.delete((*CLIENTS, index))
        changes += [ValueChange(f"ClientCertificateThumbprints[{i}]", old_client, "(removed)") for i in removed]
        if not changes:
            return data, ()
        _bump(editor, changes)
        return editor.to_bytes(), tuple(changes)
    except JsonEditError as err:
        raise RemediationError(str(err)) from err


def _indexes(clients: list[Any], thumbprint: str) -> list[int]:
    return [i for i, c in enumerate(clients) if _thumbprint(_get(c, "CertificateThumbprint")) == thumbprint]


def _get(item: Any, key: str) -> Any:
    return item.get(key) if isinstance(item, dict) else None
