"""An answer drawn from the latest snapshot, with its reason: True, False, or unknown (None)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Evidence:
    """An answer with its reason; `value` None means unknown (never to be read as "fine")."""

    value: bool | None
    detail: str

    @property
    def known(self) -> bool:
        """True when the answer is backed by data."""
        return self.value is not None

    @property
    def true(self) -> bool:
        """True only when known and true."""
        return self.value is True

    @classmethod
    def unknown(cls, detail: str) -> Evidence:
        """No evidence: the detail says which source would answer."""
        return cls(None, detail)
