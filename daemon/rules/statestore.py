"""The state store's own health: a store that cannot be written loses history the rules rely on."""

from __future__ import annotations

from collections.abc import Iterable

from collectors.model import Finding, Severity
from daemon.context import Context


def state_store_findings(ctx: Context) -> Iterable[Finding]:
    """The state store is failing: collection goes on in memory, but removals and progress are not kept."""
    status = ctx.history.store_status()
    if status is None or status.up:
        return
    since = f" since {status.since:%Y-%m-%d %H:%M}Z" if status.since else ""
    yield Finding(
        "state-store-failing",
        Severity.WARNING,
        f"the state store is failing ({status.fault}){since}: {status.message}; collection continues in memory "
        f"({status.pending} collections and samples wait to be written), but certificate removals and "
        "re-encryption progress survive a restart only once it works again: free space or make the data "
        "directory writable",
        source="state",
        target="certmon.db",
    )
