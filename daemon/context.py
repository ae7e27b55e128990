"""What every rule and every rotation step may look at: one snapshot, resolved, with history and clock."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime
from functools import wraps
from typing import Any, TypeVar

from collectors.configtemplate import ConfigTemplate
from collectors.model import CertReference, Generation, Snapshot
from daemon.history import History, RowsHistory
from daemon.settings import Settings
from daemon.stateschema import LocationHistory

T = TypeVar("T")

# The ConfigTemplate pair states what a rotation intends; every other source says what is in use.
TEMPLATE_SOURCE = "configtemplate"


@dataclass(frozen=True)
class Context:
    """The inputs of one evaluation; derived views are computed once per context (see `memoized`)."""

    snapshot: Snapshot
    references: tuple[CertReference, ...]
    roles: Mapping[str, tuple[str, ...]]
    history: History
    now: datetime
    settings: Settings
    memo: dict[str, Any] = field(default_factory=dict, compare=False, repr=False)

    @classmethod
    def build(
        cls,
        snapshot: Snapshot,
        history: History | Sequence[LocationHistory],
        now: datetime,
        settings: Settings,
    ) -> Context:
        """A context with the references resolved against the ConfigTemplate pair."""
        references = resolve_references(snapshot)
        rows = history if isinstance(history, History) else RowsHistory(history)
        return cls(snapshot, references, role_index(references), rows, now, settings)


def memoized(fn: Callable[[Context], T]) -> Callable[[Context], T]:
    """Compute a derived view of a context once, however many rules and steps ask for it."""
    key = f"{fn.__module__}.{fn.__qualname__}"

    @wraps(fn)
    def wrapper(ctx: Context) -> T:
        if key not in ctx.memo:
            ctx.memo[key] = fn(ctx)
        value: T = ctx.memo[key]
        return value

    return wrapper


def template_generations(snapshot: Snapshot) -> dict[str, dict[str, Generation]]:
    """Per role, thumbprint -> generation as the ConfigTemplate pair declares it."""
    templates = [facts for _, facts in snapshot.facts(TEMPLATE_SOURCE, ConfigTemplate)]
    new = {
        (c.role, c.thumbprint)
        for t in templates
        if t.generation is Generation.NEW
        for c in t.active_certificates()
        if c.thumbprint
    }
    out: dict[str, dict[str, Generation]] = defaultdict(dict)
    for template in templates:
        for cert in template.active_certificates():
            if not cert.thumbprint:
                continue
            is_new = (cert.role, cert.thumbprint) in new
            out[cert.role][cert.thumbprint] = Generation.NEW if is_new else Generation.OLD
    return out


def resolve_references(snapshot: Snapshot) -> tuple[CertReference, ...]:
    """Every reference, with its generation corrected by the ConfigTemplate pair where it knows."""
    known = template_generations(snapshot)
    resolved = []
    for ref in snapshot.references():
        generation = known.get(ref.role, {}).get(ref.thumbprint)
        if generation is not None and generation is not ref.generation:
            resolved.append(replace(ref, generation=generation))
        else:
            resolved.append(ref)
    return tuple(dict.fromkeys(resolved))


def role_index(references: Iterable[CertReference]) -> dict[str, tuple[str, ...]]:
    """Thumbprint -> the sorted roles that reference it."""
    roles: dict[str, set[str]] = defaultdict(set)
    for ref in references:
        if ref.thumbprint:
            roles[ref.thumbprint].add(ref.role)
    return {thumbprint: tuple(sorted(names)) for thumbprint, names in roles.items()}


def live_references(ctx: Context, thumbprint: str | None = None) -> list[CertReference]:
    """References from configurations in use (not the ConfigTemplate pair), optionally of one thumbprint."""
    return [
        r
        for r in ctx.references
        if r.source != TEMPLATE_SOURCE and r.thumbprint and (thumbprint is None or r.thumbprint == thumbprint)
    ]


def in_use(ctx: Context, thumbprint: str) -> bool:
    """True when a running configuration (cluster, agent, application...) names the certificate."""
    return bool(live_references(ctx, thumbprint))


def short(thumbprint: str) -> str:
    """A thumbprint shortened for messages that list many."""
    return thumbprint[:8] + "…" if len(thumbprint) > 12 else thumbprint


def listing(items: Sequence[str], limit: int = 4) -> str:
    """`a, b, c and 2 more`."""
    items = list(items)
    if len(items) <= limit:
        return ", ".join(items)
    return f"{', '.join(items[:limit])} and {len(items) - limit} more"
