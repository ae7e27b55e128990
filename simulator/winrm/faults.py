"""What can go wrong on a simulated node (the knobs), and what it counts (for tests and benchmarks)."""

from __future__ import annotations

import threading
from collections import Counter
from dataclasses import dataclass, field, fields
from typing import Any

from simulator.winrm.hostile import HOSTILE_MODES

STDOUT_MODES = ("ok", "garbage", "truncated")


@dataclass
class Faults:
    """Per-node fault knobs; change them with SimulatedNode.configure()."""

    #: seconds added before answering every HTTP request (handshake legs included)
    latency: float = 0.0
    #: read requests but never answer them
    hang: bool = False
    #: stop listening: connections are refused
    refuse: bool = False
    #: the node's accounts have another password (logons fail with 401)
    wrong_password: bool = False
    #: answer every WS-Management request with this SOAP fault (access denied)
    soap_fault: str | None = None
    #: Receive answers the operation-timeout fault (2150858793) this many times; -1 = forever
    operation_timeouts: int = 0
    #: stdout of the inventory: ok, garbage or truncated
    stdout: str = "ok"
    #: put CLIXML progress records on stderr, as powershell.exe does when modules load
    clixml_progress: bool = False
    #: the script fails with this message (exit code 1, CLIXML error on stderr)
    script_error: str | None = None
    #: Create is refused: the user's shell quota is used up by others
    shell_quota_exceeded: bool = False
    #: MaxShellsPerUser
    max_shells_per_user: int = 30
    #: commands a shell runs before the operations quota faults (Windows does not give them back)
    max_operations_per_shell: int = 1500
    #: answer in clear SOAP although the request was sealed (a downgrade by something in the path)
    plaintext_answers: bool = False
    #: one bit of each sealed answer's encrypted message flipped (something in the path without the session key)
    tampered_answers: bool = False
    #: close keep-alive connections idle this long (HTTP.sys closes them after 120 s); None = never
    idle_connection_timeout: float | None = None
    #: answer with a stream no WinRM service sends (simulator.winrm.hostile.HOSTILE_MODES); None = never
    hostile_answer: str | None = None
    #: only once the connection has logged on (else: to the first request, before any credential)
    hostile_after_logon: bool = False
    #: seconds between the bytes of a trickling answer
    trickle_interval: float = 1.0
    #: answer this many requests of logged-on connections with a fresh 401 challenge, forgetting the
    #: logon (a test knob: whether and when Windows does this to a logged-on connection is unverified)
    unauthorized_after_logon: int = 0

    def update(self, **changes: Any) -> None:
        """Set knobs by name; unknown names are errors."""
        names = {f.name for f in fields(self)}
        for name, value in changes.items():
            if name not in names:
                raise TypeError(f"unknown fault knob {name!r}; known: {', '.join(sorted(names))}")
            if name == "hostile_answer" and value not in (None, *HOSTILE_MODES):
                raise ValueError(f"hostile_answer must be one of {', '.join(HOSTILE_MODES)}")
            if name == "stdout" and value not in STDOUT_MODES:
                raise ValueError(f"stdout must be one of {', '.join(STDOUT_MODES)}")
            setattr(self, name, value)


@dataclass
class Counters:
    """What a node saw; read with snapshot(), cleared with reset()."""

    connections: int = 0
    requests: int = 0
    encrypted: int = 0
    handshakes: int = 0
    logons: int = 0
    auth_failures: int = 0
    faults: int = 0
    #: bytes of hostile answers written (until the client closed the connection)
    hostile_bytes: int = 0
    actions: Counter[str] = field(default_factory=Counter)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False, compare=False)

    def add(self, name: str, amount: int = 1) -> None:
        """Count an event."""
        with self._lock:
            setattr(self, name, getattr(self, name) + amount)

    def action(self, name: str) -> None:
        """Count a WS-Management action (Create, Command, Receive, Signal, Delete)."""
        with self._lock:
            self.actions[name] += 1

    def snapshot(self) -> dict[str, Any]:
        """A copy of every counter."""
        with self._lock:
            return {
                "connections": self.connections,
                "requests": self.requests,
                "encrypted": self.encrypted,
                "handshakes": self.handshakes,
                "logons": self.logons,
                "auth_failures": self.auth_failures,
                "faults": self.faults,
                "hostile_bytes": self.hostile_bytes,
                "actions": dict(self.actions),
            }

    def reset(self) -> None:
        """Start counting from zero."""
        with self._lock:
            self.connections = self.requests = self.encrypted = self.handshakes = self.logons = 0
            self.auth_failures = self.faults = self.hostile_bytes = 0
            self.actions.clear()
