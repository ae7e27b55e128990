"""Security fixtures: the remediation tests' collected lab copy and its context, the CLI tests' small lab."""

from __future__ import annotations

from tests.daemon.conftest import cli_lab
from tests.remediations.conftest import ctx, daemon, rsettings

__all__ = ["cli_lab", "ctx", "daemon", "rsettings"]
