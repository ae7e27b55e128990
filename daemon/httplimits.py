"""How much one HTTP listener lets its clients take, and the descriptors it leaves to the collectors."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Limits:
    """How much one listener lets its clients take."""

    max_connections: int = 512
    #: descriptors of the process's limit that the listeners leave to the collectors
    fd_reserve: int = 256
    tls_handshake_seconds: float = 10.0
    head_seconds: float = 10.0
    body_seconds: float = 30.0
    idle_seconds: float = 75.0
    write_seconds: float = 60.0
    workers: int = 8
    backlog: int = 4096


def fd_limit() -> int | None:
    """The process's descriptor limit, raised to its hard limit first; None where there is none (Windows)."""
    try:
        import resource
    except ImportError:
        return None
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    wanted = 65536 if hard == resource.RLIM_INFINITY else hard
    if soft != resource.RLIM_INFINITY and soft < wanted:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (wanted, hard))
            soft = wanted
        except (ValueError, OSError):
            pass
    return None if soft == resource.RLIM_INFINITY else int(soft)


def connection_cap(limits: Limits, listeners: int = 2) -> int:
    """Connections one listener may hold: the configured cap, within the descriptors left after the reserve."""
    limit = fd_limit()
    if limit is None:
        return limits.max_connections
    room = (limit - limits.fd_reserve) // max(listeners, 1)
    return max(8, min(limits.max_connections, room))
