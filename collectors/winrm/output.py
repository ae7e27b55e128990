"""What the inventory script printed: its JSON on stdout, PowerShell's CLIXML on stderr, its exit code."""

from __future__ import annotations

import base64
import binascii
import json
import re
from dataclasses import dataclass
from typing import Any

from defusedxml import DefusedXmlException
from defusedxml import ElementTree as SafeET

from collectors.errors import CollectorError, Reason
from collectors.winrm.keyacl import KeyAccess, LocalGroup, parse_key_access, parse_local_groups

SCRIPT_VERSION = 2
# dwProvType of CRYPT_KEY_PROV_INFO: 0 is a CNG key storage provider, a positive value a CryptoAPI
# provider type (PROV_RSA_FULL 1, PROV_RSA_AES 24, ...); the script reports -1 when it has no value.
CNG_PROVIDER_TYPE = 0
NO_PROVIDER_TYPE = -1
MAX_PROVIDER_TYPE = 0xFFFFFFFF
CLIXML_HEADER = "#< CLIXML"
_OBJS = re.compile(r"<Objs\b.*?</Objs>", re.S)
_CLIXML_ESCAPE = re.compile(r"_x([0-9A-Fa-f]{4})_")
_SNIPPET_LIMIT = 240
# What str.splitlines splits on.
_LINE_BREAK = re.compile("[\n\r\v\f\x1c\x1d\x1e\x85\u2028\u2029]")


@dataclass(frozen=True, slots=True)
class StoreCertificate:
    """One certificate as the script found it: raw DER and how its private key is held."""

    der: bytes
    has_private_key: bool
    key_kind: str
    provider: str
    provider_type: int = NO_PROVIDER_TYPE
    key_access: KeyAccess | None = None


def key_kind(has_private_key: bool, provider_type: int) -> str:
    """`cng`, `capi`, `unknown`, or "" without a private key: from CRYPT_KEY_PROV_INFO's dwProvType."""
    if not has_private_key:
        return ""
    if provider_type == CNG_PROVIDER_TYPE:
        return "cng"
    return "capi" if provider_type > 0 else "unknown"


@dataclass(frozen=True, slots=True)
class StoreListing:
    """The certificates of one store, or why the store could not be read."""

    store: str
    certificates: tuple[StoreCertificate, ...]
    error: str = ""


@dataclass(frozen=True, slots=True)
class SqlInstance:
    """A SQL Server instance and the thumbprint in its SuperSocketNetLib\\Certificate value (may be empty)."""

    instance: str
    thumbprint: str


@dataclass(frozen=True, slots=True)
class Inventory:
    """The parsed output of one run of the inventory script."""

    stores: tuple[StoreListing, ...]
    sql: tuple[SqlInstance, ...]
    warnings: tuple[str, ...] = ()
    #: members of the local groups the key access rules name (absent from older output: none known)
    groups: tuple[LocalGroup, ...] = ()


@dataclass(frozen=True, slots=True)
class StderrText:
    """stderr split into error messages and the number of progress records (noise)."""

    errors: tuple[str, ...]
    progress_records: int


def snippet(data: bytes | str, limit: int = _SNIPPET_LIMIT) -> str:
    """A short, printable excerpt of remote output for an error message."""
    text = data.decode("utf-8", "replace") if isinstance(data, bytes) else data
    text = "".join(c if c.isprintable() else " " for c in text).strip()
    text = re.sub(r"\s+", " ", text)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _unescape(text: str) -> str:
    return _CLIXML_ESCAPE.sub(lambda m: chr(int(m.group(1), 16)), text)


def read_stderr(stderr: bytes) -> StderrText:
    """Split stderr into error text and progress records; CLIXML from powershell.exe is decoded."""
    text = stderr.decode("utf-8", "replace")
    if CLIXML_HEADER not in text:
        plain = snippet(text)
        return StderrText((plain,) if plain else (), 0)
    errors: list[str] = []
    progress = 0
    outside = _OBJS.sub("", text.replace(CLIXML_HEADER, ""))
    for document in _OBJS.findall(text):
        try:
            root = SafeET.fromstring(document, forbid_dtd=True)
        except (SafeET.ParseError, DefusedXmlException):
            errors.append(snippet(document))
            continue
        for element in root:
            kind = element.get("S", "")
            if kind.lower() == "progress":
                progress += 1
            elif kind.lower() in ("error", "warning"):
                message = snippet(_unescape("".join(element.itertext())))
                if message:
                    errors.append(message)
    leftover = snippet(outside)
    if leftover:
        errors.append(leftover)
    return StderrText(tuple(errors), progress)


def _fail(node: str, message: str) -> CollectorError:
    return CollectorError(node, Reason.BAD_OUTPUT, message)


def _field(node: str, item: Any, key: str, kind: type | tuple[type, ...], where: str) -> Any:
    if not isinstance(item, dict) or key not in item:
        raise _fail(node, f"inventory output has no field {where}.{key}")
    value = item[key]
    if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
        raise _fail(node, f"inventory output field {where}.{key} has the wrong type ({type(value).__name__})")
    return value


def _only_line(text: str) -> bool:
    """True when the text is one line that starts with `{`, whitespace aside (the script's usual output)."""
    start, end = 0, len(text)
    while start < end and text[start].isspace():
        start += 1
    while end > start and text[end - 1].isspace():
        end -= 1
    return start < end and text[start] == "{" and _LINE_BREAK.search(text, start, end) is None


def _json_line(node: str, stdout: bytes) -> Any:
    try:
        text = stdout.decode("utf-8-sig")
    except UnicodeDecodeError as err:
        raise _fail(node, f"output is not text (byte {err.start}): {snippet(stdout)}") from err
    if _only_line(text):
        # Parsed where it is: at 50,000 certificates the output is 20 MiB, and the lines below would
        # copy it once more while the parse builds its objects. Anything odd takes the path below.
        try:
            return json.loads(text)
        except (ValueError, RecursionError):
            pass
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    if not lines:
        raise _fail(node, "the inventory script printed nothing")
    # The script prints one JSON line; anything a logon banner adds comes before it.
    candidates = [line for line in lines if line.startswith("{")]
    line = candidates[-1] if candidates else lines[-1]
    try:
        return json.loads(line)
    except json.JSONDecodeError as err:
        # The script's line always ends with the closing brace of its one object.
        truncated = not line.endswith("}") or err.pos >= len(line) - 1
        what = "truncated" if truncated else f"invalid JSON ({err.msg} at character {err.pos})"
        raise _fail(node, f"inventory output is {what}: {snippet(line, 120)}") from err
    except RecursionError as err:
        raise _fail(node, "inventory output is nested too deeply") from err
    except ValueError as err:  # a number longer than Python converts
        raise _fail(node, f"inventory output is invalid JSON ({err})") from err


def _certificate(node: str, item: Any, where: str) -> StoreCertificate:
    cert = _key_holder(node, item, where)
    if type(item) is dict and "k" in item:
        return StoreCertificate(
            cert.der,
            cert.has_private_key,
            cert.key_kind,
            cert.provider,
            cert.provider_type,
            parse_key_access(node, item["k"], f"{where}.k"),
        )
    return cert


def _key_holder(node: str, item: Any, where: str) -> StoreCertificate:
    # The common case in one step: this runs for every certificate of every node on every cycle.
    if type(item) is dict and len(item) in (4, 5):
        encoded, has_key, ptype, provider = item.get("d"), item.get("h"), item.get("t"), item.get("p")
        if (
            type(encoded) is str
            and type(has_key) is bool
            and type(ptype) is int
            and type(provider) is str
            and NO_PROVIDER_TYPE <= ptype <= MAX_PROVIDER_TYPE
        ):
            try:
                der = binascii.a2b_base64(encoded, strict_mode=True)
            except ValueError:
                pass  # not base64, or not even ASCII: the slow path below names the problem
            else:
                return StoreCertificate(der, has_key, key_kind(has_key, ptype), provider, ptype)
    encoded = _field(node, item, "d", str, where)
    try:
        der = base64.b64decode(encoded, validate=True)
    except (binascii.Error, ValueError) as err:
        raise _fail(node, f"inventory output field {where}.d is not base64") from err
    has_key = _field(node, item, "h", bool, where)
    ptype = _field(node, item, "t", int, where)
    if not NO_PROVIDER_TYPE <= ptype <= MAX_PROVIDER_TYPE:
        raise _fail(node, f"inventory output field {where}.t is not a provider type ({ptype})")
    return StoreCertificate(der, has_key, key_kind(has_key, ptype), _field(node, item, "p", str, where), ptype)


def parse_inventory(node: str, stdout: bytes) -> Inventory:
    """Parse and check the script's JSON; CollectorError(bad_output) when it is not what the script prints."""
    document = _json_line(node, stdout)
    if not isinstance(document, dict):
        raise _fail(node, f"inventory output is a JSON {type(document).__name__}, expected an object")
    version = _field(node, document, "v", int, "$")
    if version != SCRIPT_VERSION:
        raise _fail(node, f"inventory output has version {version}, expected {SCRIPT_VERSION}")
    stores = []
    for index, entry in enumerate(_field(node, document, "stores", list, "$")):
        where = f"stores[{index}]"
        error = entry.get("e", "") if isinstance(entry, dict) else ""
        items = _field(node, entry, "c", list, where)
        found_here = []
        for position, item in enumerate(items):
            found_here.append(_certificate(node, item, f"{where}.c[{position}]"))
            # Each parsed item (its base64 text several times the DER) goes as soon as it is read.
            items[position] = None
        certificates = tuple(found_here)
        stores.append(
            StoreListing(_field(node, entry, "s", str, where), certificates, error if isinstance(error, str) else "")
        )
    sql = tuple(
        SqlInstance(_field(node, item, "i", str, f"sql[{i}]"), _field(node, item, "t", str, f"sql[{i}]"))
        for i, item in enumerate(_field(node, document, "sql", list, "$"))
    )
    count = _field(node, document, "n", int, "$")
    found = sum(len(s.certificates) for s in stores)
    if count != found:
        raise _fail(node, f"inventory output announces {count} certificates but holds {found}")
    groups = parse_local_groups(node, document["g"]) if "g" in document else ()
    return Inventory(tuple(stores), sql, groups=groups)


def interpret(node: str, stdout: bytes, stderr: bytes, exit_code: int) -> Inventory:
    """The inventory from a finished run: script_error on a failed run, bad_output on garbage."""
    messages = read_stderr(stderr)
    if exit_code != 0:
        detail = "; ".join(messages.errors) or snippet(stdout) or "no error text"
        message = f"the inventory script failed (exit code {exit_code}): {detail}"
        raise CollectorError(node, Reason.SCRIPT_ERROR, message)
    inventory = parse_inventory(node, stdout)
    if messages.errors:
        return Inventory(inventory.stores, inventory.sql, messages.errors, inventory.groups)
    return inventory
