"""What the rules may ask of the location history: where a certificate was seen and is gone now.

An evaluation never loads the whole history (a million rows cost seconds and hundreds of MiB):
rules ask about the few certificates that matter (previous-generation, still referenced) and
each question is one indexed query, answered once per evaluation. Tests and benchmarks give a
list of rows instead (`RowsHistory`).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol, runtime_checkable

from daemon.statefaults import StateError, StoreStatus
from daemon.stateschema import LocationHistory


@runtime_checkable
class History(Protocol):
    """The location history as the rules see it, and the health of the store behind it."""

    def removals(self, thumbprint: str, sources: Sequence[str]) -> list[LocationHistory]:
        """Locations where `sources` saw the certificate and it is gone now."""

    def store_status(self) -> StoreStatus | None:
        """The state store's health; None when there is no store (a list of rows)."""


class RowsHistory:
    """A history given as rows (tests, benchmarks, `certmon` commands that pass one)."""

    def __init__(self, rows: Sequence[LocationHistory]) -> None:
        self._gone: dict[str, list[LocationHistory]] = {}
        for row in rows:
            if not row.present:
                self._gone.setdefault(row.thumbprint, []).append(row)

    def removals(self, thumbprint: str, sources: Sequence[str]) -> list[LocationHistory]:
        """Locations where `sources` saw the certificate and it is gone now."""
        return [r for r in self._gone.get(thumbprint, ()) if r.source in sources]

    def store_status(self) -> StoreStatus | None:
        """No store behind a list of rows."""
        return None


class StoreLike(Protocol):
    """The part of the state store a `StoreHistory` uses."""

    def removals(self, thumbprint: str, sources: Sequence[str]) -> list[LocationHistory]:
        """Locations where `sources` saw the certificate and it is gone now."""

    def status(self) -> StoreStatus:
        """The store's health."""


class StoreHistory:
    """The state store's history, queried per certificate and cached for one evaluation.

    When the store cannot be read, the answer of the last evaluation that could stands (the
    store's health says it is down), so a failing disk does not make removals disappear.
    """

    def __init__(self, store: StoreLike, last_known: dict[tuple[str, tuple[str, ...]], list[LocationHistory]]) -> None:
        self._store = store
        self._last_known = last_known
        self._asked: dict[tuple[str, tuple[str, ...]], list[LocationHistory]] = {}

    def removals(self, thumbprint: str, sources: Sequence[str]) -> list[LocationHistory]:
        """Locations where `sources` saw the certificate and it is gone now."""
        key = (thumbprint, tuple(sources))
        if key not in self._asked:
            try:
                self._asked[key] = self._last_known[key] = self._store.removals(thumbprint, tuple(sources))
            except StateError:
                self._asked[key] = self._last_known.get(key, [])
        return self._asked[key]

    def store_status(self) -> StoreStatus | None:
        """The state store's health."""
        return self._store.status()
