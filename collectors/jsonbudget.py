"""Parse a peer's JSON within a memory budget: count its values before building any object.

`json.loads` of 16 MiB of `[{},{},...]` builds 5.6 million dicts (461 MiB). Each value but the
first follows a `,` or opens with `{` or `[`, so those bytes bound the number of values from
above (commas inside strings count too: the bound errs on the safe side). `bytes.count` scans at
memory speed, so the check costs next to nothing for answers of normal size.
"""

from __future__ import annotations

import json
from typing import Any

#: values a peer's answer may hold; real answers hold a few thousand (about 100 bytes of memory each)
MAX_JSON_VALUES = 250_000


class JsonTooLarge(ValueError):
    """The document holds more values than the budget allows."""


def value_bound(data: bytes) -> int:
    """An upper bound of the number of JSON values in `data`."""
    return data.count(b",") + data.count(b"{") + data.count(b"[") + 1


def loads_within(data: bytes, max_values: int = MAX_JSON_VALUES) -> Any:
    """`json.loads` of UTF-8 (BOM allowed) JSON, refused with JsonTooLarge past `max_values` values."""
    bound = value_bound(data)
    if bound > max_values:
        raise JsonTooLarge(f"the document may hold {bound} values; at most {max_values} are accepted")
    return json.loads(data.decode("utf-8-sig"))
