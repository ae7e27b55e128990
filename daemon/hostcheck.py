"""Which `Host` headers the status page and API answer: a defence against DNS rebinding.

A web page on another site can make a browser send requests to certmon's loopback listener
under the attacker's own host name (rebinding the name to 127.0.0.1), and read the answers
as same-origin. Such a request carries that foreign name in `Host`. The listener answers
only host names it knows (localhost, this machine's name, the configured listen address, the
TLS certificate's DNS names and `api.allowed_hosts`) and IP address literals, which no
rebinding can forge; everything else gets 421 Misdirected Request.
"""

from __future__ import annotations

import ipaddress
import socket
from collections.abc import Iterable


def host_of(header: str) -> str:
    """The host part of a Host header, lower-case, without port, brackets or a trailing dot."""
    value = header.strip().lower()
    if value.startswith("["):
        return value[1 : value.find("]")] if "]" in value else ""
    if value.count(":") == 1:
        value = value.partition(":")[0]
    return value.rstrip(".")


def _is_address(host: str) -> bool:
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return False
    return True


class HostCheck:
    """The host names a listener answers, IP literals always included."""

    def __init__(self, names: Iterable[str]) -> None:
        self.names = frozenset(h for h in (host_of(n) for n in names) if h)

    @classmethod
    def for_listener(cls, listen_address: str, extra: Iterable[str] = (), tls_names: Iterable[str] = ()) -> HostCheck:
        """Known names for a listener: localhost, this machine's name, the listen address and what is configured."""
        hostname = socket.gethostname()
        names = ["localhost", hostname, hostname.partition(".")[0], listen_address, *tls_names, *extra]
        return cls(names)

    def allows(self, header: str) -> bool:
        """True when the Host header names this listener (an IP literal, or a known name)."""
        host = host_of(header)
        if not host:
            return False
        if _is_address(host) or host in self.names:
            return True
        _, dot, parent = host.partition(".")
        return bool(dot) and f"*.{parent}" in self.names
