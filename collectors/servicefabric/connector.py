"""Which gateway to talk to, with which client certificate: the configuration shared by collector and remediations.

A cluster answers on every node's gateway; the configured URLs are tried in order and the next
one is used when a node cannot be reached. The read certificate (ideally a read-only client) is
used for collection; for admin calls the remediations pick, among the configured admin
certificates, the one the running configuration lists as admin, because a rotation changes which
client certificate is admin (the old one before staging, the new one after).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from collectors.base import Deadline
from collectors.clusterconfig import ClusterConfig
from collectors.errors import CollectorError, Reason
from collectors.servicefabric.client import Clock, GatewaySession, GatewayUrl, ServerTrust, client_context
from collectors.servicefabric.identity import CertificateFile, ClientIdentity, load_identity
from collectors.tls.chain import TrustCache

# Failures that mean "this node's gateway is not there", worth trying the next URL for.
_FAILOVER = (Reason.CONNECTION_REFUSED, Reason.UNREACHABLE, Reason.TIMEOUT)


@dataclass(frozen=True)
class GatewayConfig:
    """One cluster's gateway: URLs, how to trust it, and the client certificates certmon may present."""

    name: str
    gateways: tuple[GatewayUrl, ...]
    trust: ServerTrust
    client_certificate: CertificateFile | None = None
    admin_certificates: tuple[CertificateFile, ...] = ()


class Connector:
    """Opens verified sessions to a cluster's gateway; TLS contexts and trust stores are reused."""

    def __init__(self, config: GatewayConfig, clock: Clock) -> None:
        if not config.gateways:
            raise ValueError(f"{config.name}: no gateway URL configured")
        self.config = config
        self.clock = clock
        self.trust_cache = TrustCache()
        self._contexts: dict[str, Any] = {}

    def _context(self, identity: ClientIdentity | None) -> Any:
        key = identity.thumbprint if identity is not None else ""
        context = self._contexts.get(key)
        if context is None:
            context = self._contexts[key] = client_context(identity)
        return context

    def open(self, certificate: CertificateFile | None, deadline: Deadline) -> GatewaySession:
        """A connected session with the certificate (None: none), trying each gateway URL in turn."""
        identity = load_identity(certificate) if certificate is not None else None
        return self.open_as(identity, deadline)

    def open_as(self, identity: ClientIdentity | None, deadline: Deadline) -> GatewaySession:
        """A connected session presenting an already loaded identity."""
        failures: list[CollectorError] = []
        for gateway in self.config.gateways:
            session = GatewaySession(
                gateway,
                identity,
                self.config.trust,
                deadline,
                context=self._context(identity),
                trust_cache=self.trust_cache,
                clock=self.clock,
            )
            try:
                session.connect()
            except CollectorError as err:
                session.close()
                failures.append(err)
                if err.reason in _FAILOVER and not deadline.expired():
                    continue
                raise
            return session
        first = failures[0]
        detail = "; ".join(f"{f.source}: {f.message}" for f in failures)
        raise CollectorError(self.config.name, first.reason, f"no gateway answered: {detail}")

    def admin_identity(self, running: ClusterConfig) -> ClientIdentity:
        """The configured admin certificate the running configuration lists as admin; CollectorError if none."""
        admins = {c.thumbprint for c in running.clients if c.is_admin}
        tried: list[str] = []
        for spec in self.config.admin_certificates:
            identity = load_identity(spec)
            if identity.thumbprint in admins:
                return identity
            tried.append(f"{identity.thumbprint} ({spec.label})")
        if not self.config.admin_certificates:
            raise CollectorError(self.config.name, Reason.CONFIG_ERROR, "no admin client certificate is configured")
        raise CollectorError(
            self.config.name,
            Reason.AUTH_FAILED,
            f"none of the configured admin certificates ({', '.join(tried)}) is an admin client of the running "
            f"configuration {running.version} (admin thumbprints: {', '.join(sorted(admins)) or 'none'})",
        )


def describe(gateways: Sequence[GatewayUrl]) -> str:
    """The gateway URLs, comma-separated."""
    return ", ".join(g.url for g in gateways)
