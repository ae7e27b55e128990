"""Source health findings: a target whose latest collection failed, or read only part of what it was pointed at."""

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


#: How many problem messages one finding quotes; the rest are counted.
_QUOTED_PROBLEMS = 3


def source_problems_findings(ctx: Context) -> Iterable[Finding]:
    """Every target whose latest good collection could not read part of its input (a wrong PFX password)."""
    for result in ctx.snapshot:
        if result.observation is None or not result.observation.problems:
            continue
        problems = result.observation.problems
        quoted = "; ".join(f"{p.reason}: {p.message}" for p in problems[:_QUOTED_PROBLEMS])
        more = len(problems) - _QUOTED_PROBLEMS
        tail = f"; and {more} more" if more > 0 else ""
        yield Finding(
            "source-problems",
            Severity.WARNING,
            f"{result.source} {result.target} could not read {len(problems)} item(s), "
            f"whose certificates are not watched: {quoted}{tail}",
            source=result.source,
            target=result.target,
        )
