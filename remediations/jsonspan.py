"""Where every value of a JSON text lies: a strict scanner that records spans, and JSON paths.

The parser accepts exactly what `json.loads` accepts (it uses the standard library's string
scanner) and records, for every value, the character offsets of its text and, for every
object member, those of its key, so that `remediations.jsonedit` can splice a single value.
"""

from __future__ import annotations

import json
import json.decoder
import re
from collections.abc import Callable
from dataclasses import dataclass, field

from collectors.errors import CertmonError

JsonPath = tuple[str | int, ...]

_WHITESPACE_RUN = re.compile(r"[ \t\n\r]*")
_NUMBER = re.compile(r"-?(?:0|[1-9]\d*)(?:\.\d+)?(?:[eE][-+]?\d+)?")
_LITERALS = ("true", "false", "null")
_MAX_DEPTH = 200
_PATH_PART = re.compile(r"([^.\[\]]+)|\[(\d+)\]")
# The standard library's string scanner (C-accelerated), not in its public type stubs.
_scanstring: Callable[[str, int, bool], tuple[str, int]] = json.decoder.scanstring  # type: ignore[attr-defined]


class JsonEditError(CertmonError, ValueError):
    """The document cannot be edited as asked; names the document and the path."""


@dataclass(slots=True)
class Node:
    """A value's kind and span; containers list their members or items."""

    kind: str  # "object", "array" or "scalar"
    start: int
    end: int  # exclusive
    members: list[Member] = field(default_factory=list)
    items: list[Node] = field(default_factory=list)


@dataclass(slots=True)
class Member:
    """An object member: its key, the key's span, and its value."""

    key: str
    key_start: int
    key_end: int
    value: Node


class Parser:
    """A strict JSON scanner that records where every value and key lies in the text."""

    def __init__(self, text: str, name: str) -> None:
        self.text = text
        self.name = name

    def fail(self, pos: int, message: str) -> JsonEditError:
        line = self.text.count("\n", 0, pos) + 1
        column = pos - (self.text.rfind("\n", 0, pos) + 1) + 1
        return JsonEditError(f"{self.name}: invalid JSON at line {line} column {column}: {message}")

    def skip(self, pos: int) -> int:
        # A regular expression skips whitespace in C: indentation is most of a pretty-printed file.
        return _WHITESPACE_RUN.match(self.text, pos).end()  # type: ignore[union-attr]

    def document(self) -> Node:
        pos = self.skip(0)
        if pos >= len(self.text):
            raise self.fail(pos, "the document is empty")
        node = self.value(pos, 0)
        end = self.skip(node.end)
        if end != len(self.text):
            raise self.fail(end, "extra data after the document")
        return node

    def string_end(self, pos: int) -> tuple[str, int]:
        try:
            value, end = _scanstring(self.text, pos + 1, True)
        except json.JSONDecodeError as err:
            raise self.fail(err.pos, err.msg) from err
        return value, end

    def value(self, pos: int, depth: int) -> Node:
        if depth > _MAX_DEPTH:
            raise self.fail(pos, f"nested deeper than {_MAX_DEPTH} levels")
        if pos >= len(self.text):
            raise self.fail(pos, "unexpected end of the document")
        char = self.text[pos]
        if char == "{":
            return self.object(pos, depth)
        if char == "[":
            return self.array(pos, depth)
        if char == '"':
            return Node("scalar", pos, self.string_end(pos)[1])
        for literal in _LITERALS:
            if self.text.startswith(literal, pos):
                return Node("scalar", pos, pos + len(literal))
        match = _NUMBER.match(self.text, pos)
        if match is None:
            raise self.fail(pos, "expected a value")
        return Node("scalar", pos, match.end())

    def object(self, start: int, depth: int) -> Node:
        node = Node("object", start, start)
        pos = self.skip(start + 1)
        if self.text.startswith("}", pos):
            node.end = pos + 1
            return node
        while True:
            if not self.text.startswith('"', pos):
                raise self.fail(pos, "expected a member name in double quotes")
            key, key_end = self.string_end(pos)
            colon = self.skip(key_end)
            if not self.text.startswith(":", colon):
                raise self.fail(colon, "expected ':' after the member name")
            value = self.value(self.skip(colon + 1), depth + 1)
            node.members.append(Member(key, pos, key_end, value))
            pos = self.skip(value.end)
            if self.text.startswith(",", pos):
                pos = self.skip(pos + 1)
                continue
            if self.text.startswith("}", pos):
                node.end = pos + 1
                return node
            raise self.fail(pos, "expected ',' or '}'")

    def array(self, start: int, depth: int) -> Node:
        node = Node("array", start, start)
        pos = self.skip(start + 1)
        if self.text.startswith("]", pos):
            node.end = pos + 1
            return node
        while True:
            item = self.value(pos, depth + 1)
            node.items.append(item)
            pos = self.skip(item.end)
            if self.text.startswith(",", pos):
                pos = self.skip(pos + 1)
                continue
            if self.text.startswith("]", pos):
                node.end = pos + 1
                return node
            raise self.fail(pos, "expected ',' or ']'")


def parse_path(text: str) -> JsonPath:
    """`"a.b[2].c"` -> `("a", "b", 2, "c")`; keys containing dots need the tuple form."""
    parts: list[str | int] = []
    pos = 0
    while pos < len(text):
        if text[pos] == ".":
            pos += 1
            continue
        match = _PATH_PART.match(text, pos)
        if match is None:
            raise JsonEditError(f"invalid path {text!r} at character {pos + 1}")
        parts.append(match.group(1) if match.group(1) is not None else int(match.group(2)))
        pos = match.end()
    if not parts:
        raise JsonEditError("empty path")
    return tuple(parts)


def format_path(path: JsonPath) -> str:
    """The dotted form of a path, for messages."""
    out = ""
    for part in path:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else part)
    return out or "(document)"
