"""Targeted, byte-preserving edits of JSON files that people edit by hand on Windows.

`json.load` + `json.dump` would rewrite the whole file: line endings, the UTF-8 byte-order
mark, tabs, odd indentation and key order would all change, and an operator's diff would
show every line. `JsonEditor` instead parses the text into spans (where each value starts and
ends) and splices only the bytes of the values it is asked to change; every other byte, the
BOM and the encoding included, is kept.

Extension points for later remediations (ClusterConfig.json staging, the agent share's
config.json):

* `set(path, value)` replaces a value, or inserts a missing member into an existing object
  in the style of its siblings (their indentation, line ending and `": "` spacing);
* `delete(path)` removes an object member or an array element with its separator;
* `append(path, value)` adds an element to an array;
* `span(path)` gives the character span of a value, for tests and for diff annotations.

Paths are tuples of object keys (str) and array indexes (int); `parse_path` turns
`"a.b[2].c"` into `("a", "b", 2, "c")`. A key that occurs twice in one object is refused
rather than guessed at: `json.loads` keeps the last one, an operator may mean the first.
"""

from __future__ import annotations

import json
from typing import Any

from remediations.jsonspan import JsonEditError, JsonPath, Member, Node, Parser, format_path, parse_path

__all__ = ["JsonEditError", "JsonEditor", "JsonPath", "format_path", "parse_path"]


def _detect(data: bytes) -> tuple[str, bytes]:
    if data.startswith(b"\xef\xbb\xbf"):
        return "utf-8", data[:3]
    if data.startswith(b"\xff\xfe"):
        return "utf-16-le", data[:2]
    if data.startswith(b"\xfe\xff"):
        return "utf-16-be", data[:2]
    return "utf-8", b""


class JsonEditor:
    """A JSON document as bytes, edited in place: only targeted values change."""

    def __init__(self, data: bytes, name: str = "document") -> None:
        self.name = name
        self.codec, self.bom = _detect(data)
        try:
            self.text = data[len(self.bom) :].decode(self.codec)
        except UnicodeDecodeError as err:
            raise JsonEditError(f"{name}: not valid {self.codec} text at byte {err.start + len(self.bom)}") from err
        self._original = self.text
        self._root = Parser(self.text, name).document()

    # -- reading -------------------------------------------------------------------------

    @property
    def changed(self) -> bool:
        """True once an edit changed the text."""
        return self.text != self._original

    @property
    def newline(self) -> str:
        """The document's dominant line ending (CRLF for files written on Windows)."""
        crlf = self.text.count("\r\n")
        return "\r\n" if crlf and crlf >= self.text.count("\n") - crlf else "\n"

    def to_bytes(self) -> bytes:
        """The document in its original encoding, with its byte-order mark if it had one."""
        return self.bom + self.text.encode(self.codec)

    def value(self) -> Any:
        """The whole document, parsed."""
        return json.loads(self.text)

    def has(self, path: JsonPath) -> bool:
        """True when the path names an existing value."""
        return self._lookup(path, missing_ok=True) is not None

    def get(self, path: JsonPath) -> Any:
        """The parsed value at a path."""
        node = self._require(path)
        return json.loads(self.text[node.start : node.end])

    def span(self, path: JsonPath) -> tuple[int, int]:
        """Character offsets (start, end) of the value's text."""
        node = self._require(path)
        return node.start, node.end

    def _member(self, node: Node, key: str, path: JsonPath) -> Member | None:
        found = [m for m in node.members if m.key == key]
        if len(found) > 1:
            raise JsonEditError(f"{self.name}: {format_path(path)}: the key occurs {len(found)} times")
        return found[0] if found else None

    def _lookup(self, path: JsonPath, *, missing_ok: bool) -> Node | None:
        node = self._root
        for depth, part in enumerate(path):
            here = path[: depth + 1]
            child: Node | None = None
            if isinstance(part, str) and node.kind == "object":
                member = self._member(node, part, here)
                child = member.value if member else None
            elif isinstance(part, int) and node.kind == "array":
                child = node.items[part] if 0 <= part < len(node.items) else None
            elif not missing_ok:
                expected = "an object" if isinstance(part, str) else "an array"
                raise JsonEditError(f"{self.name}: {format_path(path[:depth])}: expected {expected}")
            if child is None:
                if missing_ok:
                    return None
                raise JsonEditError(f"{self.name}: {format_path(here)}: not found")
            node = child
        return node

    def _require(self, path: JsonPath) -> Node:
        node = self._lookup(path, missing_ok=False)
        assert node is not None
        return node

    # -- style -----------------------------------------------------------------------------

    def _line_indent(self, pos: int) -> str:
        start = self.text.rfind("\n", 0, pos) + 1
        end = start
        while end < len(self.text) and self.text[end] in " \t":
            end += 1
        return self.text[start:end]

    def _indent_unit(self) -> str:
        """One level of indentation, learned from the first nested member on its own line."""
        stack = [self._root]
        while stack:
            node = stack.pop(0)
            children = [m.key_start for m in node.members] or [i.start for i in node.items]
            if children and "\n" in self.text[node.start : children[0]]:
                outer = self._line_indent(node.start)
                inner = self._line_indent(children[0])
                if inner.startswith(outer) and len(inner) > len(outer):
                    return inner[len(outer) :]
            stack.extend(m.value for m in node.members)
            stack.extend(node.items)
        return "\t" if "\n\t" in self.text else "    "

    def _colon(self) -> str:
        stack = [self._root]
        while stack:
            node = stack.pop()
            if node.members:
                member = node.members[0]
                return self.text[member.key_end : member.value.start]
            stack.extend(node.items)
        return ": "

    def _render(self, value: Any, base_indent: str, multiline: bool) -> str:
        try:
            if not multiline or not isinstance(value, dict | list) or not value:
                return json.dumps(value, ensure_ascii=False, separators=(", ", self._colon()))
            text = json.dumps(value, ensure_ascii=False, indent=self._indent_unit(), separators=(",", self._colon()))
        except (TypeError, ValueError) as err:
            raise JsonEditError(f"{self.name}: value is not representable as JSON: {err}") from err
        return text.replace("\n", self.newline + base_indent)

    # -- editing -----------------------------------------------------------------------------

    def _splice(self, start: int, end: int, replacement: str) -> None:
        text = self.text[:start] + replacement + self.text[end:]
        # Re-parse rather than shift offsets: documents are small and this proves the result valid.
        root = Parser(text, self.name).document()
        self.text, self._root = text, root

    def _container(self, path: JsonPath, what: str) -> Node:
        node = self._require(path)
        if node.kind != what:
            raise JsonEditError(f"{self.name}: {format_path(path)}: expected an {what}")
        return node

    def set(self, path: JsonPath, value: Any) -> None:
        """Replace the value at path, or insert it as a new member of an existing object."""
        if not path:
            raise JsonEditError(f"{self.name}: cannot replace the whole document")
        node = self._lookup(path, missing_ok=True)
        if node is not None:
            # A container keeps its own layout; a scalar takes the layout of the container it sits in.
            around = node if node.kind != "scalar" else self._require(path[:-1])
            multiline = "\n" in self.text[around.start : around.end]
            self._splice(node.start, node.end, self._render(value, self._line_indent(node.start), multiline))
            return
        parent_path, last = path[:-1], path[-1]
        if not isinstance(last, str):
            raise JsonEditError(f"{self.name}: {format_path(path)}: index out of range (use append)")
        self._insert(self._container(parent_path, "object"), last, value)

    def _insert(self, parent: Node, key: str, value: Any) -> None:
        colon = self._colon()
        if parent.members:
            last = parent.members[-1]
            colon = self.text[last.key_end : last.value.start]
            if len(parent.members) > 1:
                separator = self.text[parent.members[-2].value.end : last.key_start]
            else:
                separator = "," + self.text[parent.start + 1 : last.key_start]
            multiline = "\n" in separator
            indent = self._line_indent(last.key_start) if multiline else ""
            member = json.dumps(key, ensure_ascii=False) + colon + self._render(value, indent, multiline)
            self._splice(last.value.end, last.value.end, separator + member)
            return
        multiline = "\n" in self.text
        if multiline:
            outer = self._line_indent(parent.start)
            inner = outer + self._indent_unit()
            member = json.dumps(key, ensure_ascii=False) + colon + self._render(value, inner, True)
            body = "{" + self.newline + inner + member + self.newline + outer + "}"
        else:
            body = "{" + json.dumps(key, ensure_ascii=False) + colon + self._render(value, "", False) + "}"
        self._splice(parent.start, parent.end, body)

    def append(self, path: JsonPath, value: Any) -> None:
        """Add an element at the end of the array at path, in the style of its elements."""
        array = self._container(path, "array")
        if array.items:
            last = array.items[-1]
            if len(array.items) > 1:
                separator = self.text[array.items[-2].end : last.start]
            else:
                separator = "," + self.text[array.start + 1 : last.start]
            multiline = "\n" in separator
            indent = self._line_indent(last.start) if multiline else ""
            self._splice(last.end, last.end, separator + self._render(value, indent, multiline))
            return
        if "\n" in self.text:
            outer = self._line_indent(array.start)
            inner = outer + self._indent_unit()
            body = "[" + self.newline + inner + self._render(value, inner, True) + self.newline + outer + "]"
        else:
            body = "[" + self._render(value, "", False) + "]"
        self._splice(array.start, array.end, body)

    def delete(self, path: JsonPath) -> None:
        """Remove an object member or array element, with the separator that joined it."""
        if not path:
            raise JsonEditError(f"{self.name}: cannot delete the whole document")
        parent_path, last = path[:-1], path[-1]
        parent = self._require(parent_path)
        spans: list[tuple[int, int]]
        if isinstance(last, str) and parent.kind == "object":
            member = self._member(parent, last, path)
            if member is None:
                raise JsonEditError(f"{self.name}: {format_path(path)}: not found")
            index = parent.members.index(member)
            spans = [(m.key_start, m.value.end) for m in parent.members]
        elif isinstance(last, int) and parent.kind == "array" and 0 <= last < len(parent.items):
            index = last
            spans = [(i.start, i.end) for i in parent.items]
        else:
            raise JsonEditError(f"{self.name}: {format_path(path)}: not found")
        if len(spans) == 1:
            self._splice(parent.start + 1, parent.end - 1, "")
        elif index == len(spans) - 1:
            self._splice(spans[index - 1][1], spans[index][1], "")
        else:
            self._splice(spans[index][0], spans[index + 1][0], "")
