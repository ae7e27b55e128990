"""Security fixtures: the remediation tests' collected lab copy and its context."""

from __future__ import annotations

from tests.remediations.conftest import ctx, daemon, rsettings

__all__ = ["ctx", "daemon", "rsettings"]
