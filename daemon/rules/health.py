"""Source health findings: a target whose latest collection failed."""

from __future__ import annotations

from collections.abc import Iterable

from collectors.model import Finding, Severity
from daemon.context import Context


def source_down_findings(ctx: Context) -> Iterable[Finding]:
    """Every target whose latest collection failed."""
    for result in ctx.snapshot:
        if result.health.ok:
            continue
        age = result.age_seconds(ctx.now)
        kept = "no data yet" if age is None else f"showing data from {age / 60:.0f} min ago"
        yield Finding(
            "source-down",
            Severity.WARNING,
            f"{result.source} {result.target} is failing ({result.health.reason}): {result.health.message}; {kept}",
            source=result.source,
            target=result.target,
        )
