"""Reading operator-owned files: size limits, BOMs, and errors that name the file."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from defusedxml import DefusedXmlException
from defusedxml import ElementTree as SafeET

from collectors.errors import CollectorError, Reason, file_error
from collectors.jsonbudget import MAX_JSON_VALUES, value_bound

MAX_FILE_BYTES = 32 * 1024 * 1024


def read_bytes(path: str | Path, limit: int = MAX_FILE_BYTES) -> bytes:
    """The file's bytes; CollectorError naming the file when missing, unreadable or too large."""
    name = str(path)
    try:
        with open(path, "rb") as handle:
            data = handle.read(limit + 1)
    except IsADirectoryError as err:
        raise CollectorError(name, Reason.NOT_FOUND, "is a directory, expected a file") from err
    except OSError as err:
        raise file_error(name, err) from err
    if len(data) > limit:
        raise CollectorError(name, Reason.PARSE_ERROR, f"file is larger than {limit} bytes")
    return data


def decode_text(data: bytes, name: str) -> str:
    """Decode UTF-8 (with or without BOM) or UTF-16 with BOM, as Windows tools write them."""
    encoding = "utf-16" if data.startswith((b"\xff\xfe", b"\xfe\xff")) else "utf-8-sig"
    try:
        return data.decode(encoding)
    except UnicodeDecodeError as err:
        raise CollectorError(name, Reason.PARSE_ERROR, f"not valid {encoding} text at byte {err.start}") from err


def parse_json(data: bytes, name: str) -> Any:
    """Parse JSON text; the error names the file, line and column. Past the value budget it is not parsed."""
    bound = value_bound(data)
    if bound > MAX_JSON_VALUES:
        # 32 MiB of `[{},...]` would build 11 million objects (over 900 MiB) before anyone looked at them.
        raise CollectorError(name, Reason.PARSE_ERROR, f"may hold {bound} JSON values; at most {MAX_JSON_VALUES}")
    text = decode_text(data, name)
    try:
        return json.loads(text)
    except json.JSONDecodeError as err:
        raise CollectorError(
            name, Reason.PARSE_ERROR, f"invalid JSON at line {err.lineno} column {err.colno}: {err.msg}"
        ) from err
    except RecursionError as err:
        raise CollectorError(name, Reason.PARSE_ERROR, "invalid JSON: nested too deeply") from err
    except ValueError as err:
        # Not a JSONDecodeError: a number longer than Python converts (sys.get_int_max_str_digits).
        raise CollectorError(name, Reason.PARSE_ERROR, f"invalid JSON: {err}") from err


def load_json(path: str | Path) -> Any:
    """Read and parse a JSON file."""
    return parse_json(read_bytes(path), str(path))


def parse_xml(data: bytes, name: str) -> Any:
    """Parse untrusted XML with defusedxml: no DTDs, entities or external references."""
    try:
        return SafeET.fromstring(data, forbid_dtd=True)
    except DefusedXmlException as err:
        raise CollectorError(
            name, Reason.PARSE_ERROR, f"refused XML: {type(err).__name__} (DTDs and entities are not allowed)"
        ) from err
    except SafeET.ParseError as err:
        raise CollectorError(name, Reason.PARSE_ERROR, f"invalid XML: {err}") from err
    except (LookupError, ValueError) as err:
        # The XML declaration names an encoding Python does not know (or a codec rejects the bytes).
        raise CollectorError(name, Reason.PARSE_ERROR, f"invalid XML: {err}") from err


def local_name(tag: str) -> str:
    """Element name without its namespace."""
    return tag.rsplit("}", 1)[-1]
