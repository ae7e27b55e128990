"""An answer body kept as parts, sent one after another and never joined.

The /metrics bodies of one evaluation share most of their bytes (the text and OpenMetrics
formats have the same sample lines; their gzip forms the same compressed segments, see
`daemon.exposition`). Kept as parts, each shared piece is held once, and no body is ever
copied whole: at 150,000 series the joined bodies cost 70 MiB per evaluation, twice over
while the previous evaluation's bodies are still being served.
"""

from __future__ import annotations

from collections.abc import Iterable

# Parts smaller than this are copied into one (a scrape then writes a few large pieces, not
# hundreds of HELP lines); larger ones are kept as given, so a shared part stays shared.
COALESCE_BELOW = 64 * 1024


class Parts:
    """An immutable sequence of byte strings that make one body."""

    __slots__ = ("_chunks", "_size")

    def __init__(self, chunks: Iterable[bytes]) -> None:
        self._chunks = tuple(chunks)
        self._size = sum(len(c) for c in self._chunks)

    @property
    def chunks(self) -> tuple[bytes, ...]:
        """The parts, in order."""
        return self._chunks

    def __len__(self) -> int:
        return self._size

    def __bytes__(self) -> bytes:
        """A joined copy (tests and tools; scrapes send the parts)."""
        return b"".join(self._chunks)

    def __repr__(self) -> str:
        return f"Parts({len(self._chunks)} parts, {self._size} bytes)"


class PartsBuilder:
    """Collects parts, copying runs of small ones together and keeping large ones as they are."""

    def __init__(self) -> None:
        self._chunks: list[bytes] = []
        self._pending = bytearray()

    def add(self, chunk: bytes) -> None:
        """Append one part."""
        if len(chunk) < COALESCE_BELOW:
            self._pending += chunk
            if len(self._pending) >= COALESCE_BELOW:
                self._flush()
            return
        self._flush()
        self._chunks.append(chunk)

    def _flush(self) -> None:
        if self._pending:
            self._chunks.append(bytes(self._pending))
            self._pending.clear()

    def build(self) -> Parts:
        """The parts collected so far."""
        self._flush()
        return Parts(self._chunks)


def unique_size(*bodies: Parts) -> int:
    """Bytes the bodies hold together, each shared part counted once."""
    seen: dict[int, int] = {}
    for body in bodies:
        for chunk in body.chunks:
            seen[id(chunk)] = len(chunk)
    return sum(seen.values())
