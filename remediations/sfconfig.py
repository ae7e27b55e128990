"""ClusterConfig.json edits of a thumbprint rotation: stage (new primary, old secondary) and clean up.

Both are targeted edits through `JsonEditor`: only the thumbprint members, the client list and
`clusterConfigurationVersion` change; every other byte of the operator's file stays as it was.

* stage: for the cluster, server and reverse-proxy certificates, the new thumbprint becomes
  `Thumbprint` and the current one `ThumbprintSecondary`; the old admin client stays as
  read-only and the new client is added as admin; the version goes up by one.
* clean up: every `ThumbprintSecondary` and the old client entry are removed; the version goes up.

Staging then cleaning up gives the original structure with the new thumbprints and the version
raised twice (the property test in tests/remediations/test_sfconfig.py).

Keys are found case-insensitively and written in the file's own spelling: a hand-written file says
`clusterConfigurationVersion` and `properties.security`, an exported one (what the cluster returns)
`ClusterConfigurationVersion` and `Properties.Security`; a member certmon adds takes the casing of
its siblings.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from collectors.certificate import normalize_thumbprint
from collectors.clusterconfig import CERT_KINDS, member, member_key
from collectors.errors import ThumbprintError
from remediations.errors import RemediationError
from remediations.jsonedit import JsonEditError, JsonEditor, JsonPath
from remediations.plan import ValueChange

INFO: JsonPath = ("properties", "security", "CertificateInformation")
CLIENTS: JsonPath = (*INFO, "ClientCertificateThumbprints")
VERSION: JsonPath = ("clusterConfigurationVersion",)


def resolve(editor: JsonEditor, path: JsonPath) -> JsonPath:
    """`path` in the file's own spelling: each object key matched case-insensitively (missing keys kept as given)."""
    node: Any = editor.value()
    out: list[str | int] = []
    for part in path:
        if isinstance(part, str) and isinstance(node, dict):
            key = member_key(node, part)
            out.append(key)
            node = node.get(key)
        else:
            out.append(part)
            node = node[part] if isinstance(node, list) and isinstance(part, int) and part < len(node) else None
    return tuple(out)


def _sibling_key(entry: Any, key: str) -> str:
    return member_key(entry, key) if isinstance(entry, dict) else key


@dataclass(frozen=True, slots=True)
class SfRotationThumbprints:
    """The thumbprints one rotation moves between: server/cluster certificate and admin client."""

    new_server: str
    new_client: str
    old_client: str
    #: the server/cluster certificate being replaced; "" = the cluster certificate's current primary
    old_server: str = ""


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
    info_path = resolve(editor, INFO)
    info = editor.get(info_path) if editor.has(info_path) else {}
    found = []
    for key, _kind in CERT_KINDS:
        spelled = member_key(info, key) if isinstance(info, dict) else key
        entry = info.get(spelled) if isinstance(info, dict) else None
        if isinstance(entry, dict) and member(entry, "Thumbprint"):
            found.append((key, (*info_path, spelled)))
    return found


def _clients_path(editor: JsonEditor) -> JsonPath:
    return resolve(editor, CLIENTS)


def _clients(editor: JsonEditor) -> list[Any]:
    path = _clients_path(editor)
    value = editor.get(path) if editor.has(path) else []
    if not isinstance(value, list):
        raise RemediationError(f"{editor.name}: ClientCertificateThumbprints is not an array")
    return value


def _bump(editor: JsonEditor, changes: list[ValueChange]) -> None:
    path = resolve(editor, VERSION)
    current = editor.get(path) if editor.has(path) else None
    if not isinstance(current, str):
        raise RemediationError(f"{editor.name}: clusterConfigurationVersion is missing or not a string")
    following = bump_version(current)
    editor.set(path, following)
    changes.append(ValueChange(str(path[0]), current, following))


def _rotated_old(editor: JsonEditor, certificates: list[tuple[str, JsonPath]], rotation: SfRotationThumbprints) -> str:
    """The old thumbprint this rotation moves from: given, or the cluster certificate's current primary."""
    if rotation.old_server:
        return rotation.old_server
    for key, path in certificates:
        if key == "ClusterCertificate":
            return _thumbprint(_field(editor.get(path), "Thumbprint"))
    return _thumbprint(_field(editor.get(certificates[0][1]), "Thumbprint"))


def stage(data: bytes, rotation: SfRotationThumbprints, name: str) -> tuple[bytes, tuple[ValueChange, ...]]:
    """The staged configuration's bytes and the values that changed; RemediationError when it cannot be staged.

    Only the slots whose primary is the rotation's old thumbprint move (a reverse proxy with a
    certificate of its own keeps it, untouched).
    """
    try:
        editor = JsonEditor(data, name)
        changes: list[ValueChange] = []
        certificates = _certificate_paths(editor)
        if not certificates:
            raise RemediationError(f"{name}: no certificate is declared by thumbprint; nothing to stage")
        old = _rotated_old(editor, certificates, rotation)
        moved = 0
        for key, path in certificates:
            entry = editor.get(path)
            primary = _thumbprint(_field(entry, "Thumbprint"))
            secondary = _thumbprint(_field(entry, "ThumbprintSecondary"))
            if primary == rotation.new_server:
                raise RemediationError(f"{name}: {key} already uses the new thumbprint {primary} as primary")
            if primary != old:
                continue  # a slot with a certificate of its own: not this rotation's
            if secondary:
                raise RemediationError(
                    f"{name}: {key} still has ThumbprintSecondary {secondary} from an earlier rotation; "
                    "clean it up first (Service Fabric refuses two certificates to two different certificates)"
                )
            editor.set((*path, _sibling_key(entry, "Thumbprint")), rotation.new_server)
            editor.set((*path, _sibling_key(entry, "ThumbprintSecondary")), primary)
            changes.append(ValueChange(f"{key}.Thumbprint", primary, rotation.new_server))
            changes.append(ValueChange(f"{key}.ThumbprintSecondary", "", primary))
            moved += 1
        if not moved:
            raise RemediationError(f"{name}: no certificate slot uses the old thumbprint {old}; nothing to stage")
        clients_path = _clients_path(editor)
        clients = _clients(editor)
        olds = _indexes(clients, rotation.old_client)
        if not olds:
            raise RemediationError(f"{name}: the old admin client {rotation.old_client} is not in the client list")
        for index in olds:
            if _field(clients[index], "IsAdmin") is not False:
                editor.set((*clients_path, index, _sibling_key(clients[index], "IsAdmin")), False)
                changes.append(ValueChange(f"ClientCertificateThumbprints[{index}].IsAdmin", "true", "false"))
        news = _indexes(clients, rotation.new_client)
        for index in news:
            if _field(clients[index], "IsAdmin") is not True:
                editor.set((*clients_path, index, _sibling_key(clients[index], "IsAdmin")), True)
                changes.append(ValueChange(f"ClientCertificateThumbprints[{index}].IsAdmin", "false", "true"))
        if not news:
            model = clients[olds[0]]
            entry_value = {
                _sibling_key(model, "CertificateThumbprint"): rotation.new_client,
                _sibling_key(model, "IsAdmin"): True,
            }
            editor.append(clients_path, entry_value)
            changes.append(ValueChange("ClientCertificateThumbprints[+]", "", f"{rotation.new_client} (admin)"))
        _bump(editor, changes)
        return editor.to_bytes(), tuple(changes)
    except JsonEditError as err:
        raise RemediationError(str(err)) from err


def cleanup(data: bytes, old_client: str, name: str, *, new_server: str = "") -> tuple[bytes, tuple[ValueChange, ...]]:
    """The cleaned configuration's bytes: no ThumbprintSecondary, no old client; (data, ()) when already clean.

    With `new_server`, only the slots this rotation staged (primary `new_server`) lose their
    secondary; a slot with a certificate of its own keeps whatever it has.
    """
    try:
        editor = JsonEditor(data, name)
        changes: list[ValueChange] = []
        for key, path in _certificate_paths(editor):
            entry = editor.get(path)
            if new_server and _thumbprint(_field(entry, "Thumbprint")) != new_server:
                continue
            spelled = member_key(entry, "ThumbprintSecondary")
            if spelled in entry:
                secondary = _thumbprint(entry.get(spelled))
                editor.delete((*path, spelled))
                changes.append(ValueChange(f"{key}.ThumbprintSecondary", secondary or "(empty)", "(removed)"))
        clients_path = _clients_path(editor)
        clients = _clients(editor)
        removed = _indexes(clients, old_client)
        for index in reversed(removed):
            editor.delete((*clients_path, index))
        changes += [ValueChange(f"ClientCertificateThumbprints[{i}]", old_client, "(removed)") for i in removed]
        if not changes:
            return data, ()
        _bump(editor, changes)
        return editor.to_bytes(), tuple(changes)
    except JsonEditError as err:
        raise RemediationError(str(err)) from err


def _indexes(clients: list[Any], thumbprint: str) -> list[int]:
    return [i for i, c in enumerate(clients) if _thumbprint(_field(c, "CertificateThumbprint")) == thumbprint]


def _field(item: Any, key: str) -> Any:
    return member(item, key) if isinstance(item, dict) else None
