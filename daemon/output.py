"""Text output for the CLI: aligned tables and JSON."""

from __future__ import annotations

import json
import sys
from collections.abc import Sequence
from typing import Any, TextIO


def table(headers: Sequence[str], rows: Sequence[Sequence[Any]], out: TextIO | None = None) -> None:
    """Print rows as an aligned text table."""
    out = out or sys.stdout
    cells = [[str(h) for h in headers]] + [["" if v is None else str(v) for v in row] for row in rows]
    widths = [max(len(row[i]) for row in cells) for i in range(len(headers))]
    for index, row in enumerate(cells):
        out.write("  ".join(value.ljust(widths[i]) for i, value in enumerate(row)).rstrip() + "\n")
        if index == 0:
            out.write("  ".join("-" * w for w in widths) + "\n")


def dump_json(payload: Any, out: TextIO | None = None) -> None:
    """Print JSON with stable key order."""
    out = out or sys.stdout
    json.dump(payload, out, indent=2, default=str, ensure_ascii=False)
    out.write("\n")


class Progress:
    """A one-line progress display on a terminal; silent when stderr is not a terminal."""

    def __init__(self, stream: TextIO | None = None) -> None:
        self.stream = stream or sys.stderr
        self.enabled = self.stream.isatty()
        self.done = 0
        self.failed = 0
        #: targets in the whole collection, when known (0: unknown)
        self.total = 0

    def update(self, source: str, target: str, ok: bool) -> None:
        """One more target collected."""
        self.done += 1
        self.failed += 0 if ok else 1
        if self.enabled:
            count = f"{self.done}/{self.total}" if self.total >= self.done else str(self.done)
            line = f"collected {count} targets ({self.failed} failed): {source} {target}"
            self.stream.write("\r\x1b[K" + line[:110])
            self.stream.flush()

    def finish(self) -> None:
        """Clear the progress line."""
        if self.enabled:
            self.stream.write("\r\x1b[K")
            self.stream.flush()
