"""Refused API requests reach the audit at a bounded rate: one record per client and outcome per window.

Every `/api/` call is audited, refused ones included. Left at that, anyone who can reach the
listener could fill the audit (and the state store) with 401s at line rate. So for requests
the API refuses (no or wrong credentials, another site's request, a malformed call), the
first one from a client in each `window_seconds` is written in full, the rest are counted,
and the next record written for that client and outcome (or the summary written when the
daemon stops) says how many were left out (`detail.suppressed`). Successful calls and
remediation outcomes are always written in full. Request paths in records are cut to
`MAX_PATH` characters.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

#: outcomes of refused requests, which are rate-limited
REFUSED_OUTCOMES = frozenset({"unauthorized", "forbidden", "bad-request", "not-found", "misdirected"})
MAX_PATH = 200
WINDOW_SECONDS = 60.0
BURST = 5
MAX_CLIENTS = 256
OVERFLOW = "*"

Key = tuple[str, str]


def short_path(path: str) -> str:
    """A request path as audit records keep it: at most MAX_PATH characters."""
    return path if len(path) <= MAX_PATH else path[: MAX_PATH - 3] + "..."


class RefusalLimiter:
    """Decides which refused requests are written to the audit, and counts the others."""

    def __init__(
        self,
        window_seconds: float = WINDOW_SECONDS,
        burst: int = BURST,
        max_clients: int = MAX_CLIENTS,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.window = window_seconds
        self.burst = burst
        self.max_clients = max_clients
        self._clock = clock
        self._lock = threading.Lock()
        # (peer, outcome) -> [start of its window, refusals written in it, refusals left out of it]
        self._windows: dict[Key, list[float]] = {}

    def admit(self, peer: str, outcome: str) -> tuple[bool, int]:
        """(write this one, how many were left out before it) for a refused request from `peer`."""
        now = self._clock()
        with self._lock:
            key = (peer, outcome)
            if key not in self._windows and len(self._windows) >= self.max_clients:
                self._expire(now)
                if len(self._windows) >= self.max_clients:
                    # Too many distinct clients at once: they share one window.
                    key = (OVERFLOW, outcome)
            window = self._windows.get(key)
            if window is not None and now - window[0] < self.window:
                if window[1] < self.burst:
                    window[1] += 1
                    return True, 0
                window[2] += 1
                return False, 0
            left_out = int(window[2]) if window is not None else 0
            self._windows[key] = [now, 1, 0]
            return True, left_out

    def _expire(self, now: float) -> None:
        stale = [k for k, (start, _, left_out) in self._windows.items() if now - start >= self.window and not left_out]
        for key in stale:
            del self._windows[key]

    def drain(self) -> list[tuple[str, str, int]]:
        """(peer, outcome, count) of refusals not written yet; forgets them (at stop)."""
        with self._lock:
            pending = [(peer, outcome, int(w[2])) for (peer, outcome), w in self._windows.items() if w[2]]
            self._windows.clear()
        return pending
