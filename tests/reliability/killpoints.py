"""Kill points counted in what a process does, not in seconds: the same kill lands at the same step on a busy machine.

A crash test used to kill its child a random number of milliseconds after `go`, calibrated on
an uninterrupted run. On a loaded machine the child runs slower than the calibration, so every kill
landed early (or, once the calibration itself ran slowly, after the change: `Counter({'after': 50})`).
Here the child counts its own steps and kills itself (SIGKILL) before step `k`:

* the I/O events CPython raises to audit hooks (`open`, `os.rename` and `os.replace`, `os.remove`,
  `socket.connect`, `http.client.send`, `sqlite3.connect`, `subprocess.Popen`...), in every thread;
* the calls into C that write, commit or exchange data (`write`, `flush`, `fsync`, `execute`,
  `commit`, `send`, `recv_into`, the TLS object's `read`/`write`...) seen by a profile hook, in the
  thread that arms the counter and in threads started after it: these put kills between the two
  halves of an append, inside a SQLite transaction, or after a request went out and before its
  answer came back.

Nothing in the product knows: the hooks are installed by the test's child (`crashchild`) or by
the wrapper that runs the command line (`python -m tests.reliability.killrun`). A calibration run
records how many steps an apply takes and at which steps the intent journal appears and goes
(`Calibration`), and the test draws kill steps from those counts.
"""

from __future__ import annotations

import itertools
import os
import signal
import sys
import threading
from dataclasses import dataclass
from types import FrameType
from typing import Any

#: audit events that mark a step with a visible effect outside the process (or the start of one)
AUDIT_EVENTS = frozenset(
    {
        "open",
        "os.rename",
        "os.remove",
        "os.rmdir",
        "os.mkdir",
        "os.truncate",
        "os.link",
        "os.symlink",
        "os.chmod",
        "shutil.copyfile",
        "shutil.move",
        "socket.connect",
        "socket.sendto",
        "http.client.connect",
        "http.client.send",
        "sqlite3.connect",
        "subprocess.Popen",
    }
)
#: names of C functions and methods (any type) that write, commit or exchange bytes
C_CALLS = frozenset(
    {
        "write",
        "writelines",
        "flush",
        "fsync",
        "fdatasync",
        "replace",
        "rename",
        "unlink",
        "execute",
        "executemany",
        "executescript",
        "commit",
        "rollback",
        "send",
        "sendall",
        "recv",
        "recv_into",
        "read",
        "readinto",
        "do_handshake",
    }
)


@dataclass(frozen=True)
class Calibration:
    """What an uninterrupted run did, in steps: how many, and where the intent journal lived."""

    steps: int
    journal_from: int | None
    journal_to: int | None

    def draw(self, band: str, rng: Any) -> int:
        """A kill step in `band`: `whole` (the run and a little past it), `journal` (while the journal exists),
        `journal-start` (its first quarter, where backups, writes and remote calls begin) or `before-journal`
        (nothing changed yet)."""
        if self.journal_from is None or band == "whole":
            return int(rng.randrange(0, int(self.steps * 1.2) + 1))
        start = self.journal_from
        end = max(start, self.journal_to if self.journal_to is not None else self.steps)
        if band == "before-journal":
            return int(rng.randrange(0, start + 1))
        if band == "journal-start":
            return int(rng.randrange(start, start + max(1, (end - start) // 4) + 1))
        return int(rng.randrange(start, end + 1))


class StepCounter:
    """Counts steps once armed; at step `kill_at` (None: never) sends its own process `kill_signal` (SIGKILL)."""

    def __init__(self, journal_mark: str = ".journal.json", kill_signal: int = signal.SIGKILL) -> None:
        self._steps = itertools.count()
        self.armed = False
        self.kill_at: int | None = None
        self.kill_signal = kill_signal
        self._journal_mark = journal_mark
        self.journal_from: int | None = None
        self.journal_to: int | None = None
        sys.addaudithook(self._audit)

    def profile(self) -> None:
        """Also count calls into C, in this thread and in threads started from now on."""
        threading.setprofile(self._profile)
        sys.setprofile(self._profile)

    def arm(self, kill_at: int | None) -> None:
        """Start counting from zero now."""
        self._steps = itertools.count()
        self.kill_at = kill_at
        self.journal_from = self.journal_to = None
        self.armed = True

    def now(self) -> int:
        """The step count so far (it uses up one step)."""
        return next(self._steps)

    def kill_in(self, steps: int) -> None:
        """Kill `steps` steps from now."""
        self.kill_at = self.now() + 1 + steps

    def disarm(self) -> Calibration:
        """Stop counting (and profiling); what was counted since `arm`."""
        self.armed = False
        sys.setprofile(None)
        threading.setprofile(None)  # type: ignore[arg-type]
        return Calibration(next(self._steps), self.journal_from, self.journal_to)

    def _step(self) -> int:
        step = next(self._steps)
        if step == self.kill_at:
            os.kill(os.getpid(), self.kill_signal)
        return step

    def _audit(self, event: str, args: tuple[Any, ...]) -> None:
        if not self.armed or event not in AUDIT_EVENTS:
            return
        step = self._step()
        if self.kill_at is None and args and self._journal_mark in str(args[0]):
            # Calibration only: where the journal is written (open or rename onto it) and removed.
            if event == "os.remove" and self.journal_from is not None:
                self.journal_to = step
            elif event == "os.rename" and self._journal_mark in str(args[1]):
                self.journal_from = step if self.journal_from is None else self.journal_from
            elif event == "open" and self.journal_from is None and "w" in str(args[1] if len(args) > 1 else ""):
                self.journal_from = step

    def _profile(self, _frame: FrameType, event: str, arg: Any) -> None:
        if event == "c_call" and self.armed and getattr(arg, "__name__", None) in C_CALLS:
            self._step()
