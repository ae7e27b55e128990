"""SIGTERM and SIGINT (Ctrl+C; Ctrl+Break on Windows) during a change: roll back, then stop.

Python runs signal handlers in the main thread between bytecodes, so the exception a handler
raises can surface anywhere, even right after `os.replace` returned. Two rules keep that safe:

* the checkpoint registers each undo step *before* its side effect;
* the guard raises `Interrupted` only while *armed* (the change is in progress), and disarms
  itself when it does, so at most one `Interrupted` is ever raised: later signals, and any
  signal outside the change (rollback, audit, re-collection), are remembered in `pending`
  and reported once the run has been recorded.

Outside the main thread (the daemon's API threads) handlers cannot be installed; there the
guard is inert and the daemon's own shutdown path applies.
"""

from __future__ import annotations

import signal
import threading
from types import FrameType, TracebackType
from typing import Any

from remediations.errors import RemediationError

SIGNAL_NAMES = ("SIGTERM", "SIGINT", "SIGBREAK")


class Interrupted(RemediationError):
    """A stop signal arrived while a change was in progress."""

    def __init__(self, signum: int) -> None:
        self.signum = signum
        self.signal_name = signal.Signals(signum).name
        super().__init__(f"interrupted by {self.signal_name}")


class SignalGuard:
    """Turns the first stop signal during the armed phase into `Interrupted`; remembers the rest."""

    def __init__(self) -> None:
        self.armed = False
        self.pending: int | None = None
        self._previous: dict[int, Any] = {}

    @property
    def active(self) -> bool:
        """True when handlers are installed (main thread only)."""
        return bool(self._previous)

    @property
    def pending_name(self) -> str | None:
        """Name of a signal that arrived and was not raised, if any."""
        return None if self.pending is None else signal.Signals(self.pending).name

    def _handle(self, signum: int, frame: FrameType | None) -> None:
        if self.armed:
            self.armed = False
            raise Interrupted(signum)
        self.pending = self.pending or signum

    def __enter__(self) -> SignalGuard:
        if threading.current_thread() is threading.main_thread():
            for name in SIGNAL_NAMES:
                signum = getattr(signal, name, None)
                if signum is not None:
                    self._previous[signum] = signal.signal(signum, self._handle)
        return self

    def __exit__(
        self, kind: type[BaseException] | None, error: BaseException | None, trace: TracebackType | None
    ) -> None:
        self.armed = False
        for signum, previous in self._previous.items():
            signal.signal(signum, previous)
        self._previous.clear()
