"""ODBC connection strings: `Key=value;` pairs, braced values, and the keywords that carry secrets."""

from __future__ import annotations

from collections.abc import Iterable

# Keywords whose value is a secret; certmon adds the password itself and refuses it in the string.
SECRET_KEYWORDS = frozenset({"pwd", "password"})
# Keywords that name where a connection goes, for error messages (never the user or the password).
PLACE_KEYWORDS = ("server", "data source", "address", "addr", "servername", "dsn")
DATABASE_KEYWORDS = ("database", "initial catalog")


class ConnectionStringError(ValueError):
    """The text is not a well-formed ODBC connection string."""


def parse_connection_string(text: str) -> list[tuple[str, str]]:
    """The (keyword, value) pairs of an ODBC connection string, in order; braces removed from values."""
    pairs: list[tuple[str, str]] = []
    position, length = 0, len(text)
    while position < length:
        if text[position] in "; \t":
            position += 1
            continue
        equals = text.find("=", position)
        if equals < 0:
            # Not quoted back: text without a keyword may be the tail of a password split at a ';'.
            raise ConnectionStringError(f"expected Keyword=value at character {position}")
        key = text[position:equals].strip()
        if not key or ";" in key:
            raise ConnectionStringError(f"empty keyword before '=' at character {equals}")
        position = equals + 1
        if position < length and text[position] == "{":
            value, position = _braced(text, position)
            while position < length and text[position] in " \t":
                position += 1
            if position < length and text[position] != ";":
                raise ConnectionStringError(f"{key}: text after the closing brace")
        else:
            end = text.find(";", position)
            end = length if end < 0 else end
            value, position = text[position:end].strip(), end
        pairs.append((key, value))
    seen: set[str] = set()
    for key, _ in pairs:
        if key.lower() in seen:
            raise ConnectionStringError(f"{key} is given twice")
        seen.add(key.lower())
    return pairs


def _braced(text: str, start: int) -> tuple[str, int]:
    out: list[str] = []
    position = start + 1
    while position < len(text):
        char = text[position]
        if char == "}":
            if text.startswith("}}", position):
                out.append("}")
                position += 2
                continue
            return "".join(out), position + 1
        out.append(char)
        position += 1
    raise ConnectionStringError("a braced value is not closed")


def format_value(value: str) -> str:
    """A value as it must be written in a connection string (braced when it holds special characters)."""
    if value and not any(c in value for c in ";{}=") and value == value.strip():
        return value
    return "{" + value.replace("}", "}}") + "}"


def build_connection_string(pairs: Iterable[tuple[str, str]]) -> str:
    """Join (keyword, value) pairs into a connection string."""
    return "".join(f"{key}={format_value(value)};" for key, value in pairs)


def keyword(pairs: Iterable[tuple[str, str]], *names: str) -> str:
    """The value of the first of these keywords present (case-insensitive), or ''."""
    wanted = {n.lower(): i for i, n in enumerate(names)}
    found = sorted((wanted[k.lower()], v) for k, v in pairs if k.lower() in wanted)
    return found[0][1] if found else ""


def secret_keywords(pairs: Iterable[tuple[str, str]]) -> list[str]:
    """Keywords of the string that carry a password."""
    return [k for k, _ in pairs if k.lower() in SECRET_KEYWORDS]


def with_keywords(pairs: list[tuple[str, str]], extra: dict[str, str]) -> list[tuple[str, str]]:
    """The pairs plus `extra`, where the string does not already set those keywords (the operator wins)."""
    present = {k.lower() for k, _ in pairs}
    return pairs + [(k, v) for k, v in extra.items() if k.lower() not in present]
