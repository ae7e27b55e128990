"""What the simulated node runs: certmon's inventory script, answered from the node folder, and approved commands.

The node folder is the lab's `certs/<NODE>/`: certificate files at the top are `LocalMachine\\My`,
a sub-folder `Root/` is `LocalMachine\\Root`, and so on; `node.json` stands for the registry and the
key storage (see nodefile.py). Anything else sent to the node fails the way cmd.exe or PowerShell
would fail; the simulator never guesses.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import os
import re
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding

from collectors.winrm.script import script_body
from simulator.winrm.keyfiles import key_access, local_groups
from simulator.winrm.nodefile import CAPI_DEFAULT, CNG_DEFAULT, key_provider, read_node_facts
from simulator.winrm.pfx import PfxError, read_pfx

# The script this emulation was written against. A changed inventory.ps1 is an unknown script
# to the simulator until this emulation (and this hash) are updated with it.
INVENTORY_SCRIPT_SHA256 = "bb6923c2a2a396f5e977583a152ca4491e3b2ad16c6c8bc1757cb825459bcb34"
# What inventory.ps1 reports when a key's CRYPT_KEY_PROV_INFO cannot be read (no such property).
NO_PROVIDER_INFO = "no CERT_KEY_PROV_INFO property"
CERT_SUFFIXES = frozenset({".pfx", ".p12", ".cer", ".crt", ".der", ".pem"})
_PROLOGUE = re.compile(r"\$Stores=@\(('(?:[^']|'')*'(?:,'(?:[^']|'')*')*)\)")
_QUOTED = re.compile(r"'((?:[^']|'')*)'")
# A command-line word as cmd.exe splits it: quoted, or up to the next blank.
_WORD = re.compile(r'"[^"]*"|\S+')
STORE_MISSING = "The system cannot find the file specified.\r\n"
# Certificate files by (path, mtime, size, password), shared by every simulated node of the process:
# decrypting PFX files is the slow part of answering, and tests start many fleets on one lab.
_CACHE: dict[tuple[str, int, int, bytes | None], list[StoredCertificate]] = {}
_CACHE_LIMIT = 200_000
_CACHE_LOCK = threading.Lock()


@dataclass(frozen=True)
class Process:
    """How a command ended on the node."""

    stdout: bytes
    stderr: bytes
    exit_code: int


@dataclass(frozen=True)
class StoredCertificate:
    """A certificate file of the node folder, read once per (mtime, size)."""

    der: bytes
    has_key: bool
    ec_key: bool


def clixml(kind: str, text: str) -> str:
    """A stderr CLIXML document with one record, as powershell.exe writes to a redirected stderr."""
    escaped = text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;").replace("\r\n", "_x000D__x000A_")
    if kind == "progress":
        record = (
            '<Obj S="progress" RefId="0"><TN RefId="0"><T>System.Management.Automation.PSCustomObject</T>'
            '<T>System.Object</T></TN><MS><I64 N="SourceId">1</I64><PR N="Record"><AV>Preparing modules for '
            "first use.</AV><AI>0</AI><Nil /><PI>-1</PI><PC>-1</PC><T>Completed</T><SR>-1</SR><SD> </SD></PR>"
            "</MS></Obj>"
        )
    else:
        record = f'<S S="Error">{escaped}_x000D__x000A_</S>'
    return (
        f'#< CLIXML\r\n<Objs Version="1.1.0.1" xmlns="http://schemas.microsoft.com/powershell/2004/04">{record}</Objs>'
    )


def not_recognized(name: str) -> Process:
    """cmd.exe's answer to a program it cannot find."""
    text = f"'{name}' is not recognized as an internal or external command,\r\noperable program or batch file.\r\n"
    return Process(b"", text.encode(), 1)


class NodeFolder:
    """A node's certificate stores and registry facts, read from its lab folder on every run."""

    def __init__(self, root: Path, pfx_password: bytes | None) -> None:
        self.root = root
        self._password = pfx_password

    @property
    def password(self) -> bytes | None:
        """The PFX password the node imported its certificates with."""
        return self._password

    def facts(self) -> dict[str, Any]:
        """node.json, or nothing."""
        return read_node_facts(self.root)

    def signature(self) -> tuple[tuple[str, int, int], ...]:
        """Names, sizes and times of every file of the node folder and its store sub-folders."""
        found: list[tuple[str, int, int]] = []
        pending = [self.root]
        while pending:
            folder = pending.pop()
            try:
                with os.scandir(folder) as entries:
                    for entry in entries:
                        if entry.is_dir():
                            pending.append(Path(entry.path))
                        else:
                            stat = entry.stat()
                            found.append((entry.path, stat.st_size, stat.st_mtime_ns))
            except FileNotFoundError:
                continue
        return tuple(sorted(found))

    def store_folder(self, store: str) -> Path | None:
        """The folder holding a store, or None when the node has no such store."""
        location, _, name = store.partition("\\")
        if location.lower() != "localmachine" or not self.root.is_dir():
            return None
        if name.lower() == "my":
            return self.root
        for child in self.root.iterdir():
            if child.is_dir() and child.name.lower() == name.lower():
                return child
        return None

    def certificates(self, folder: Path) -> list[StoredCertificate]:
        """Every certificate of one store, one entry per thumbprint, key present if any copy has it."""
        merged: dict[bytes, StoredCertificate] = {}
        with os.scandir(folder) as entries:
            files = sorted((e.name, e) for e in entries if e.is_file())
        for name, entry in files:
            if os.path.splitext(name)[1].lower() not in CERT_SUFFIXES:
                continue
            for item in self._read(entry):
                digest = hashlib.sha1(item.der, usedforsecurity=False).digest()
                seen = merged.get(digest)
                if seen is None or (item.has_key and not seen.has_key):
                    merged[digest] = item
        return list(merged.values())

    def _read(self, entry: os.DirEntry[str]) -> list[StoredCertificate]:
        stat = entry.stat()
        key = (entry.path, stat.st_mtime_ns, stat.st_size, self._password)
        with _CACHE_LOCK:
            cached = _CACHE.get(key)
        if cached is not None:
            return cached
        path = Path(entry.path)
        data = path.read_bytes()
        if path.suffix.lower() in (".pfx", ".p12"):
            items = self._pfx(data)
        else:
            certs = (
                x509.load_pem_x509_certificates(data)
                if b"-----BEGIN" in data
                else [x509.load_der_x509_certificate(data)]
            )
            items = [StoredCertificate(c.public_bytes(Encoding.DER), False, False) for c in certs]
        with _CACHE_LOCK:
            if len(_CACHE) >= _CACHE_LIMIT:
                _CACHE.clear()
            _CACHE[key] = items
        return items

    def _pfx(self, data: bytes) -> list[StoredCertificate]:
        # Import-PfxCertificate puts the leaf (with its key) in the target store; the chain goes elsewhere.
        try:
            entries = read_pfx(data, self._password)
        except PfxError:
            return []  # a PFX the node could not have imported with this password is not in its store
        return [StoredCertificate(e.der, e.has_key, e.ec_key) for e in entries]


def parse_stores(prologue: str) -> list[str] | None:
    """The store list of the script's first line, or None when it is not that line."""
    match = _PROLOGUE.fullmatch(prologue)
    if match is None:
        return None
    return [m.group(1).replace("''", "'") for m in _QUOTED.finditer(match.group(1))]


def decode_encoded_command(value: str) -> str | None:
    """The script of a -EncodedCommand argument, or None when it is not base64 UTF-16LE."""
    try:
        return base64.b64decode(value, validate=True).decode("utf-16-le")
    except (binascii.Error, ValueError, UnicodeDecodeError):
        return None


def _encoded_argument(arguments: list[str]) -> str | None:
    for index, argument in enumerate(arguments):
        flag = argument.lower()
        # PowerShell accepts any unambiguous prefix of -EncodedCommand (-e, -ec, -enc, ...).
        if flag in ("-e", "-ec") or (len(flag) >= 3 and "-encodedcommand".startswith(flag)):
            return arguments[index + 1] if index + 1 < len(arguments) else None
    return None


class PowerShellHost:
    """Runs a command line the way the node would: the inventory script, or a faithful error."""

    def __init__(self, folder: NodeFolder) -> None:
        self.folder = folder
        self._expected_body = script_body()
        self._last: tuple[Any, str] | None = None
        self.script_supported = hashlib.sha256(self._expected_body.encode()).hexdigest() == INVENTORY_SCRIPT_SHA256

    def run(self, executable: str, arguments: list[str]) -> Process:
        """Run one command line (WinRM joins Command and Arguments into one line for cmd.exe)."""
        words = [w.strip('"') for w in _WORD.findall(" ".join([executable, *arguments]))]
        if not words:
            return not_recognized("(empty)")
        program = words[0].replace("/", "\\").rsplit("\\", 1)[-1].lower()
        if program not in ("powershell", "powershell.exe"):
            return not_recognized(words[0])
        arguments = words[1:]
        encoded = _encoded_argument(arguments)
        if encoded is None:
            return self._powershell_error("This simulated node only runs certmon's inventory script (-EncodedCommand).")
        script = decode_encoded_command(encoded)
        if script is None:
            return self._powershell_error(
                "Cannot process the command because the value specified with -EncodedCommand is not properly "
                "encoded. The value must be Base64 encoded."
            )
        prologue, _, body = script.partition("\n")
        stores = parse_stores(prologue)
        if stores is None or body != self._expected_body or not self.script_supported:
            approved = self._approved(script)
            if approved is not None:
                return approved
            return self._powershell_error(
                "The term is not recognized as the name of a cmdlet, function, script file, or operable program: "
                "this simulated node runs only the inventory script it was built for."
            )
        return Process(self.inventory(stores).encode("ascii"), b"", 0)

    def _approved(self, script: str) -> Process | None:
        """An operator-approved command this node knows (Configure-CredentialsJson.ps1 -Action Rotate), or None."""
        from simulator.winrm import credentialsjson, nodetemp, packagefiles

        packages = packagefiles.run(script, self.folder.root, self.folder.facts())
        if packages is not None:
            return Process(packages.encode("ascii"), b"", 0)
        try:
            transferred = nodetemp.run(script, self.folder.root, self.folder.facts())
        except nodetemp.ScriptError as err:
            # The transfer scripts' trap writes the exception message to stderr and exits 1.
            return Process(b"", f"{err}\r\n".encode(), 1)
        if transferred is not None:
            return Process(transferred.encode("ascii"), b"", 0)
        found = credentialsjson.match(script, self.folder.facts(), self.folder.root)
        if found is None:
            return None
        configuration_file, action = found
        if action != "Rotate":
            return self._powershell_error(f"This simulated node runs -Action Rotate only, not {action}.")
        try:
            output = credentialsjson.rotate(self.folder.root, self.folder.password, configuration_file)
        except credentialsjson.ScriptFailure as err:
            return self._powershell_error(str(err))
        return Process(output.encode("utf-8"), b"", 0)

    def _powershell_error(self, message: str) -> Process:
        return Process(b"", clixml("error", message).encode(), 1)

    def inventory(self, stores: list[str]) -> str:
        """What inventory.ps1 prints for these stores on this node: one JSON line."""
        # Recomputed only when a file of the node folder changes (name, size or time).
        signature = (tuple(stores), self.folder.signature())
        if self._last is not None and self._last[0] == signature:
            return self._last[1]
        text = self._inventory(stores)
        self._last = (signature, text)
        return text

    def _inventory(self, stores: list[str]) -> str:
        facts = self.folder.facts()
        providers = {str(k).upper(): v for k, v in dict(facts.get("key_providers") or {}).items()}
        entries = []
        count = 0
        for store in stores:
            entry: dict[str, Any] = {"s": store, "c": []}
            folder = self.folder.store_folder(store)
            if folder is None:
                entry["e"] = STORE_MISSING
            else:
                for item in self.folder.certificates(folder):
                    entry["c"].append(_certificate_entry(item, providers, facts, self.folder.root.name))
            count += len(entry["c"])
            entries.append(entry)
        sql = [{"i": str(name), "t": str(value)} for name, value in dict(facts.get("sql_instances") or {}).items()]
        named = {
            str(rule[0]).upper() for entry in entries for item in entry["c"] for rule in item.get("k", {}).get("a", [])
        }
        groups = local_groups(facts, self.folder.root.name, named)
        document = {"v": 2, "stores": entries, "sql": sql, "n": count, "g": groups}
        return json.dumps(document, separators=(",", ":")) + "\r\n"


def _certificate_entry(
    item: StoredCertificate, providers: dict[str, Any], facts: dict[str, Any], node: str
) -> dict[str, Any]:
    # The script's Get-KeyInfo: CRYPT_KEY_PROV_INFO's dwProvType and pwszProvName, -1 and why when unread;
    # then Get-KeyAcl for a key whose provider is known.
    provider_type, provider = -1, ""
    thumbprint = ""
    if item.has_key:
        thumbprint = hashlib.sha1(item.der, usedforsecurity=False).hexdigest().upper()
        # CryptoAPI cannot hold an ECDSA key, so such keys are always CNG.
        default = CNG_DEFAULT if item.ec_key else CAPI_DEFAULT
        found = key_provider(providers.get(thumbprint, default))
        if found is None:
            provider = NO_PROVIDER_INFO
        else:
            provider, provider_type = found
    entry = {"d": base64.b64encode(item.der).decode("ascii"), "h": item.has_key, "t": provider_type, "p": provider}
    if provider_type >= 0:
        entry["k"] = key_access(facts, node, thumbprint, provider_type)
    return entry
