"""Re-encryption progress: samples of what remains, kept over time, turned into a rate, an ETA and a stall.

No table reports how much data is still encrypted with the old certificate, so operators point
probes at the encrypted fields they care about; each collection records what every probe
returned. The batch job runs two hours a day, so a rate measured inside one run would be
about twelve times too optimistic: the rate is only taken over at least `min_rate_span`
(a day by default) and over at most `rate_window` of history.
"""

from __future__ import annotations

import itertools
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Protocol, runtime_checkable

Sample = tuple[datetime, float, float | None]


@runtime_checkable
class ProgressHistory(Protocol):
    """Where progress samples are kept (the daemon's state store, or memory)."""

    def add_progress(self, probe: str, at: datetime, remaining: float, total: float | None) -> None:
        """Record one sample."""

    def progress(self, probe: str, since: datetime | None = None) -> list[Sample]:
        """Samples of a probe since a moment, oldest first."""


class MemoryProgressHistory:
    """Samples kept in memory, for a collector not attached to a state store."""

    def __init__(self) -> None:
        self._samples: dict[str, dict[datetime, Sample]] = {}
        self._lock = threading.Lock()

    def add_progress(self, probe: str, at: datetime, remaining: float, total: float | None) -> None:
        """Record one sample."""
        with self._lock:
            self._samples.setdefault(probe, {})[at] = (at, remaining, total)

    def progress(self, probe: str, since: datetime | None = None) -> list[Sample]:
        """Samples of a probe since a moment, oldest first."""
        with self._lock:
            samples = sorted(self._samples.get(probe, {}).values())
        return [s for s in samples if since is None or s[0] >= since]


@dataclass(frozen=True, slots=True)
class RatePolicy:
    """How much history a rate needs and how long without progress counts as stalled."""

    rate_window: timedelta = timedelta(days=7)
    min_rate_span: timedelta = timedelta(days=1)
    stall_after: timedelta = timedelta(hours=48)


@dataclass(frozen=True, slots=True)
class ProgressEstimate:
    """What one probe says now, and what its history says about the pace."""

    probe: str
    remaining: float
    total: float | None
    measured_at: datetime
    #: rows (or whatever the probe counts) re-encrypted per hour over the window; None: not enough history
    rate_per_hour: float | None
    eta: datetime | None
    #: the oldest sample the rate was measured from
    rate_since: datetime | None
    #: when `remaining` last went down; None when it never did within the history read
    last_progress_at: datetime | None
    #: the oldest sample read (how far back the stall judgement can look)
    history_since: datetime
    samples: int
    stalled: bool

    @property
    def complete(self) -> bool:
        """Nothing remains."""
        return self.remaining <= 0

    @property
    def ratio(self) -> float | None:
        """Share already re-encrypted (0..1), when the probe reports a total."""
        if self.total is None or self.total <= 0:
            return None
        return max(0.0, min(1.0, 1.0 - self.remaining / self.total))


def estimate(
    probe: str,
    history: Sequence[Sample],
    reading: tuple[float, float | None],
    now: datetime,
    policy: RatePolicy,
) -> ProgressEstimate:
    """Rate, ETA and stall from the samples (oldest first) and the (remaining, total) read now."""
    remaining, total = reading
    samples = [s for s in history if s[0] <= now] or [(now, remaining, total)]
    if samples[-1][0] != now:
        samples.append((now, remaining, total))
    last_progress = None
    for before, after in itertools.pairwise(samples):
        if after[1] < before[1]:
            last_progress = after[0]
    window = [s for s in samples if s[0] >= now - policy.rate_window]
    rate = eta = rate_since = None
    if remaining > 0 and len(window) >= 2 and now - window[0][0] >= policy.min_rate_span:
        hours = (now - window[0][0]).total_seconds() / 3600.0
        done = window[0][1] - remaining
        rate_since = window[0][0]
        rate = max(0.0, done / hours)
        if rate > 0:
            eta = now + timedelta(hours=remaining / rate)
    history_since = samples[0][0]
    quiet_since = last_progress or history_since
    stalled = remaining > 0 and now - history_since >= policy.stall_after and now - quiet_since >= policy.stall_after
    return ProgressEstimate(
        probe=probe,
        remaining=remaining,
        total=total,
        measured_at=now,
        rate_per_hour=rate,
        eta=eta,
        rate_since=rate_since,
        last_progress_at=last_progress,
        history_since=history_since,
        samples=len(samples),
        stalled=stalled,
    )
