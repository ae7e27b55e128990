"""The byte-preserving JSON editor: only the targeted values' bytes change."""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from remediations.jsonedit import JsonEditError, JsonEditor, format_path, parse_path

OLD_SERVER = "D82F3C0BF4978547B59E1A630216FC3C6D63C0A7"
NEW_SERVER = "DAE6C07BC9A33EAAA6A0C6E84FEC99705C5B145C"

# What operators' files look like after a few hand edits on Windows: BOM, CRLF, tabs mixed with
# odd space indentation, a trailing space, keys in no particular order, unknown sections.
WINDOWS_FILE = (
    "\ufeff{\r\n"
    '\t"zeta": 1,\r\n'
    '\t"serviceFabric" :  {\r\n'
    '\t   "connectionEndpoint": "10.0.0.11:19000",\r\n'
    '\t   "certificateSettings": {\r\n'
    f'\t\t\t"serverCertThumbprint":"{OLD_SERVER}", \r\n'
    '\t\t\t"clientCertThumbprint": "98ED4B204EAC4E00F01C7FF8A0B7342C2E09EF14"\r\n'
    "\t   }\r\n"
    "\t},\r\n"
    '   "unknownSection": {"nested": [1, 2.50, {"deep": null}], "text": "caf\\u00e9 \\"quoted\\""},\r\n'
    '\t"components": []\r\n'
    "}\r\n"
).encode()


def test_replacing_a_value_keeps_every_other_byte() -> None:
    editor = JsonEditor(WINDOWS_FILE, "localagent-config.json")
    editor.set(parse_path("serviceFabric.certificateSettings.serverCertThumbprint"), NEW_SERVER)
    assert editor.to_bytes() == WINDOWS_FILE.replace(OLD_SERVER.encode(), NEW_SERVER.encode())
    assert editor.changed
    assert editor.get(("serviceFabric", "certificateSettings", "serverCertThumbprint")) == NEW_SERVER


def test_setting_the_same_value_changes_nothing() -> None:
    editor = JsonEditor(WINDOWS_FILE)
    editor.set(parse_path("serviceFabric.certificateSettings.serverCertThumbprint"), OLD_SERVER)
    assert not editor.changed
    assert editor.to_bytes() == WINDOWS_FILE


def test_utf16_with_bom_stays_utf16() -> None:
    data = "\ufeff" + '{\r\n  "a": "x",\r\n  "b": 1\r\n}'
    encoded = data.encode("utf-16-le")
    editor = JsonEditor(encoded)
    editor.set(("a",), "y")
    assert editor.to_bytes() == data.replace('"x"', '"y"').encode("utf-16-le")


def test_inserted_member_follows_its_siblings_style() -> None:
    editor = JsonEditor(WINDOWS_FILE)
    editor.set(("serviceFabric", "certificateSettings", "ThumbprintSecondary"), "AB" * 20)
    text = editor.to_bytes().decode("utf-8-sig")
    # The separator and the spacing around ':' are copied from the nearest sibling, quirks included.
    assert (
        '"clientCertThumbprint": "98ED4B204EAC4E00F01C7FF8A0B7342C2E09EF14", \r\n'
        f'\t\t\t"ThumbprintSecondary": "{"AB" * 20}"\r\n\t   }}'
    ) in text
    assert editor.value()["serviceFabric"]["certificateSettings"]["ThumbprintSecondary"] == "AB" * 20
    assert "\n" not in text.replace("\r\n", "")


def test_inserting_into_an_empty_object_and_array() -> None:
    editor = JsonEditor(b'{\r\n    "a": {},\r\n    "list": []\r\n}')
    editor.set(("a", "k"), {"x": [1, 2]})
    editor.append(("list",), "v")
    assert editor.to_bytes() == (
        b'{\r\n    "a": {\r\n        "k": {\r\n            "x": [\r\n                1,\r\n                2\r\n'
        b'            ]\r\n        }\r\n    },\r\n    "list": [\r\n        "v"\r\n    ]\r\n}'
    )


def test_compact_documents_stay_compact() -> None:
    editor = JsonEditor(b'{"a": 1, "b": [1, 2]}')
    editor.set(("c",), {"d": True})
    editor.append(("b",), 3)
    assert editor.to_bytes() == b'{"a": 1, "b": [1, 2, 3], "c": {"d": true}}'


def test_appending_to_a_list_of_objects() -> None:
    data = b'{\n\t"clients": [\n\t\t{\n\t\t\t"CertificateThumbprint": "A",\n\t\t\t"IsAdmin": false\n\t\t}\n\t]\n}\n'
    editor = JsonEditor(data)
    editor.append(("clients",), {"CertificateThumbprint": "B", "IsAdmin": True})
    assert editor.value() == {
        "clients": [{"CertificateThumbprint": "A", "IsAdmin": False}, {"CertificateThumbprint": "B", "IsAdmin": True}]
    }
    assert editor.to_bytes().startswith(data[: data.index(b"\n\t]")])
    assert (
        b'\t\t},\n\t\t{\n\t\t\t"CertificateThumbprint": "B",\n\t\t\t"IsAdmin": true\n\t\t}\n\t]\n}\n'
        in editor.to_bytes()
    )


@pytest.mark.parametrize(
    ("key", "expected"),
    [
        ("a", b'{\r\n  "b": 2,\r\n  "c": 3\r\n}'),
        ("b", b'{\r\n  "a": 1,\r\n  "c": 3\r\n}'),
        ("c", b'{\r\n  "a": 1,\r\n  "b": 2\r\n}'),
    ],
)
def test_deleting_a_member_removes_its_separator(key: str, expected: bytes) -> None:
    editor = JsonEditor(b'{\r\n  "a": 1,\r\n  "b": 2,\r\n  "c": 3\r\n}')
    editor.delete((key,))
    assert editor.to_bytes() == expected


def test_deleting_the_only_member_and_array_elements() -> None:
    editor = JsonEditor(b'{"only": {"x": 1}, "list": [1, 2, 3]}')
    editor.delete(("only", "x"))
    editor.delete(("list", 1))
    assert editor.to_bytes() == b'{"only": {}, "list": [1, 3]}'


def test_duplicate_keys_are_refused_not_guessed() -> None:
    editor = JsonEditor(b'{"a": {"k": 1, "k": 2}}', "dup.json")
    with pytest.raises(JsonEditError, match=r"dup\.json: a\.k: the key occurs 2 times"):
        editor.set(("a", "k"), 3)


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b'{"a": 1,}', "line 1 column 9: expected a member name"),
        (b'{\r\n  "a": tru\r\n}', "line 2 column 8: expected a value"),
        (b'{"a": 1} x', "extra data after the document"),
        (b"", "the document is empty"),
        (b'{"a": "\xff"}', "not valid utf-8 text at byte 7"),
        (b"[" * 500 + b"]" * 500, "nested deeper than"),
    ],
)
def test_invalid_documents_are_named_with_a_position(data: bytes, message: str) -> None:
    with pytest.raises(JsonEditError, match=r"bad\.json") as caught:
        JsonEditor(data, "bad.json")
    assert message in str(caught.value)


def test_paths_that_do_not_fit_the_document() -> None:
    editor = JsonEditor(b'{"a": {"b": [1]}, "s": "x"}', "doc.json")
    with pytest.raises(JsonEditError, match=r"doc\.json: missing: not found"):
        editor.set(("missing", "deeper"), 1)
    with pytest.raises(JsonEditError, match="expected an object"):
        editor.set(("s", "x"), 1)
    with pytest.raises(JsonEditError, match="index out of range"):
        editor.set(("a", "b", 5), 1)
    with pytest.raises(JsonEditError, match="not representable"):
        editor.set(("a", "c"), object())
    assert not editor.changed


def test_path_syntax() -> None:
    assert parse_path("a.b[2].c") == ("a", "b", 2, "c")
    assert format_path(("a", "b", 2, "c")) == "a.b[2].c"
    with pytest.raises(JsonEditError):
        parse_path("")


# -- properties ---------------------------------------------------------------------------

_scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-(10**12), 10**12),
    st.floats(allow_nan=False, allow_infinity=False, width=32),
    st.text(max_size=8),
)
_keys = st.text(alphabet="abcdefgh_é", min_size=1, max_size=5)
_values = st.recursive(
    _scalars,
    lambda inner: st.one_of(st.lists(inner, max_size=4), st.dictionaries(_keys, inner, max_size=4)),
    max_leaves=20,
)
_documents = st.dictionaries(_keys, _values, min_size=1, max_size=5)
_styles = st.tuples(
    st.sampled_from([None, 2, 4, "\t", " "]),
    st.sampled_from([(", ", ": "), (",", ":"), (",", " : ")]),
    st.booleans(),  # CRLF
    st.booleans(),  # BOM
)


def _encode(document: dict[str, Any], style: tuple[Any, ...]) -> bytes:
    indent, separators, crlf, bom = style
    text = json.dumps(document, indent=indent, separators=separators, ensure_ascii=False)
    if crlf:
        text = text.replace("\n", "\r\n")
    return (b"\xef\xbb\xbf" if bom else b"") + text.encode()


def _paths(value: Any, prefix: tuple[str | int, ...] = ()) -> list[tuple[str | int, ...]]:
    out = [prefix] if prefix else []
    if isinstance(value, dict):
        for key, child in value.items():
            out += _paths(child, (*prefix, key))
    elif isinstance(value, list):
        for index, child in enumerate(value):
            out += _paths(child, (*prefix, index))
    return out


def _assign(document: Any, path: tuple[str | int, ...], value: Any) -> None:
    for part in path[:-1]:
        document = document[part]
    document[path[-1]] = value


@settings(max_examples=150, deadline=None)
@given(document=_documents, style=_styles, new=_scalars, data=st.data())
def test_replacing_any_value_changes_only_its_span(
    document: dict[str, Any], style: tuple[Any, ...], new: Any, data: st.DataObject
) -> None:
    original = _encode(document, style)
    path = data.draw(st.sampled_from(_paths(document)))
    editor = JsonEditor(original)
    start, end = editor.span(path)
    text = editor.text
    editor.set(path, new)
    _assign(document, path, new)
    assert json.loads(editor.to_bytes().decode("utf-8-sig")) == document
    rendered = json.dumps(new, ensure_ascii=False)
    assert editor.text == text[:start] + rendered + text[end:]
    assert editor.to_bytes().startswith(b"\xef\xbb\xbf") == original.startswith(b"\xef\xbb\xbf")


@settings(max_examples=150, deadline=None)
@given(document=_documents, style=_styles, new=_values, key=_keys, data=st.data())
def test_insert_then_delete_restores_the_bytes(
    document: dict[str, Any], style: tuple[Any, ...], new: Any, key: str, data: st.DataObject
) -> None:
    original = _encode(document, style)
    objects = [()] + [
        p for p in _paths(document) if _value_at(document, p) and isinstance(_value_at(document, p), dict)
    ]
    parent = data.draw(st.sampled_from(objects))
    target = _value_at(document, parent)
    key = key + "_new"
    assert key not in target
    editor = JsonEditor(original)
    editor.set((*parent, key), new)
    expected = json.loads(original.decode("utf-8-sig"))
    _assign(expected, (*parent, key), new)
    assert json.loads(editor.to_bytes().decode("utf-8-sig")) == expected
    editor.delete((*parent, key))
    assert editor.to_bytes() == original


def _value_at(document: Any, path: tuple[str | int, ...]) -> Any:
    for part in path:
        document = document[part]
    return document
