"""cProfile for every thread a benchmark starts, merged: cProfile alone sees only the calling thread.

Each profile counts its thread's own CPU time (time.thread_time), not wall time: with many threads,
wall time puts the wait for the GIL on whatever call released it (a socket read, a large hash).

    with ThreadProfiles() as profiles:
        ...                      # threads started in here are profiled from their first line
        profiles.active = False  # threads started from now on are not
    profiles.print(25)           # the 25 functions with the most own time, over all threads
"""

from __future__ import annotations

import cProfile
import io
import pstats
import threading
import time
from types import TracebackType
from typing import Any


class ThreadProfiles:
    """Wraps threading.Thread.run while active: each new thread runs under its own cProfile.Profile."""

    def __init__(self, include_caller: bool = True) -> None:
        self.active = True
        self.include_caller = include_caller
        self._profiles: list[cProfile.Profile] = []
        self._lock = threading.Lock()
        self._original: Any = None

    def __enter__(self) -> ThreadProfiles:
        original = self._original = threading.Thread.run
        owner = self

        def run(thread: threading.Thread) -> None:
            if not owner.active:
                original(thread)
                return
            profile = cProfile.Profile(time.thread_time)
            with owner._lock:
                owner._profiles.append(profile)
            profile.enable()
            try:
                original(thread)
            finally:
                profile.disable()

        threading.Thread.run = run  # type: ignore[method-assign,assignment]
        if self.include_caller:
            self._main = cProfile.Profile(time.thread_time)
            self._profiles.append(self._main)
            self._main.enable()
        return self

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None, tb: TracebackType | None) -> None:
        if self.include_caller:
            self._main.disable()
        threading.Thread.run = self._original  # type: ignore[method-assign]

    @property
    def threads(self) -> int:
        """How many profiles were taken (threads, plus the caller's)."""
        return len(self._profiles)

    def stats(self) -> pstats.Stats:
        """All profiles merged."""
        with self._lock:
            profiles = [p for p in self._profiles if p.getstats()]
        merged = pstats.Stats(profiles[0], stream=io.StringIO())
        for profile in profiles[1:]:
            merged.add(profile)
        return merged

    def print(self, top: int = 25, sort: str = "tottime") -> str:
        """The `top` functions by `sort`, as pstats prints them."""
        stream = io.StringIO()
        stats = self.stats()
        stats.stream = stream  # type: ignore[attr-defined]
        stats.sort_stats(sort).print_stats(top)
        return stream.getvalue()
