"""TLS endpoints (AOS URL, SF gateway, AD FS, SSRS, SQL Server over TDS): every address behind a name.

Each configured endpoint is one target. Its name is resolved to every address (or the operator lists
the nodes behind a load balancer), each address is probed with the endpoint's SNI, and the chain each
one presents is reported whatever its validity, with the validation verdict beside it.
"""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from collectors.base import Collector, Deadline
from collectors.certificate import Certificate, certificate_from_der
from collectors.errors import CertificateError, CollectorError, Reason
from collectors.model import CertObservation, CertReference, Generation, MetricSpec, Observation, Problem
from collectors.tls.chain import ChainJudge, TrustCache, TrustStore
from collectors.tls.client import Handshake, SocketTlsClient, client_context
from collectors.tls.tds import ALPN_TDS8, probe_tds7, probe_tds8
from collectors.transport import connect, network_error

KINDS = ("tls", "tds", "tds8")
DEFAULT_PORTS = {"tls": 443, "tds": 1433, "tds8": 1433}
# Addresses of one endpoint probed at once (nodes behind a load balancer).
PROBE_THREADS = 16

Resolver = Callable[[str, int], Sequence[str]]
Clock = Callable[[], datetime]


def utc_now() -> datetime:
    """The wall clock, in UTC."""
    return datetime.now(UTC)


def resolve_addresses(host: str, port: int) -> tuple[str, ...]:
    """Every address a name resolves to, in resolver order, without duplicates."""
    infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    return tuple(dict.fromkeys(str(info[4][0]) for info in infos))


@dataclass(frozen=True)
class Endpoint:
    """One configured endpoint: what to connect to, which name to ask for, and how to speak."""

    name: str
    host: str
    port: int
    kind: str = "tls"
    sni: str | None = None
    addresses: tuple[str, ...] = ()
    ca_bundle: Path | None = None
    role: str = ""

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ValueError(f"endpoint {self.name}: kind {self.kind!r} is not one of {', '.join(KINDS)}")

    @property
    def server_name(self) -> str:
        """The name the certificate must carry: the SNI name when one is set, else the host."""
        return self.sni or self.host

    @property
    def sni_value(self) -> str | None:
        """The SNI to send: the host unless configured (an empty string sends none)."""
        return self.host if self.sni is None else (self.sni or None)


@dataclass(frozen=True)
class AddressProbe:
    """The outcome of probing one address of an endpoint."""

    address: str
    presented: tuple[Certificate, ...] = ()
    completed: bool = False
    reason: Reason | None = None
    message: str = ""
    tls_version: str = ""
    cipher: str = ""
    alpn: str = ""
    chain_valid: bool | None = None
    chain_error: str = ""
    chain_message: str = ""
    server_version: str = ""
    encryption: str = ""
    duration_seconds: float = 0.0

    @property
    def leaf(self) -> Certificate | None:
        """The server's own certificate, when one was presented."""
        return self.presented[0] if self.presented else None

    @property
    def success(self) -> bool:
        """True when the handshake (and, for TDS, the pre-login) completed and a certificate came back."""
        return self.completed and bool(self.presented)


@dataclass(frozen=True)
class TlsEndpointFacts:
    """Every address probed for one endpoint."""

    name: str
    host: str
    port: int
    kind: str
    server_name: str
    probes: tuple[AddressProbe, ...]

    def leaves(self) -> dict[str, list[str]]:
        """Leaf thumbprint -> the addresses presenting it."""
        out: dict[str, list[str]] = {}
        for probe in self.probes:
            if probe.leaf is not None:
                out.setdefault(probe.leaf.thumbprint, []).append(probe.address)
        return out

    @property
    def inconsistent(self) -> bool:
        """True when the addresses behind the name present different certificates."""
        return len(self.leaves()) > 1


def _success(facts: TlsEndpointFacts, target: str) -> Iterable[tuple[tuple[str, ...], float]]:
    for probe in facts.probes:
        yield (target, probe.address, facts.kind), 1.0 if probe.success else 0.0


def _never_probed(target: str) -> Iterable[tuple[tuple[str, ...], float]]:
    # No address was ever probed (the name does not resolve): one series, node and kind unknown.
    yield (target, "", ""), 0.0


def _chain_valid(facts: TlsEndpointFacts, target: str) -> Iterable[tuple[tuple[str, ...], float]]:
    for probe in facts.probes:
        if probe.chain_valid is not None:
            yield (target, probe.address, probe.chain_error), 1.0 if probe.chain_valid else 0.0


def _version(facts: TlsEndpointFacts, target: str) -> Iterable[tuple[tuple[str, ...], float]]:
    for probe in facts.probes:
        if probe.tls_version:
            yield (target, probe.address, probe.tls_version, probe.cipher), 1.0


def _earliest(facts: TlsEndpointFacts, target: str) -> Iterable[tuple[tuple[str, ...], float]]:
    for probe in facts.probes:
        if probe.presented:
            yield (target, probe.address), min(c.not_after_ts for c in probe.presented)


def _duration(facts: TlsEndpointFacts, target: str) -> Iterable[tuple[tuple[str, ...], float]]:
    for probe in facts.probes:
        yield (target, probe.address), probe.duration_seconds


def _tds(facts: TlsEndpointFacts, target: str) -> Iterable[tuple[tuple[str, ...], float]]:
    for probe in facts.probes:
        if probe.server_version or probe.encryption:
            yield (target, probe.address, probe.server_version, probe.encryption), 1.0


TLS_METRICS = (
    MetricSpec(
        "certmon_tls_probe_success",
        "1 when the handshake with the address completed and it presented a certificate "
        "(0 while the endpoint's latest probe fails; node and kind empty while the name never resolved).",
        ("target", "node", "kind"),
        _success,
        stale_value=0.0,
        no_data=_never_probed,
    ),
    MetricSpec(
        "certmon_tls_chain_valid",
        "1 when the presented chain validates for the endpoint's name against the CA bundle; error says why not.",
        ("target", "node", "error"),
        _chain_valid,
    ),
    MetricSpec(
        "certmon_tls_version_info",
        "The TLS version and cipher suite the address negotiated.",
        ("target", "node", "version", "cipher"),
        _version,
    ),
    MetricSpec(
        "certmon_tls_chain_earliest_expiry_timestamp_seconds",
        "Earliest notAfter among the certificates the address presented, Unix time.",
        ("target", "node"),
        _earliest,
    ),
    MetricSpec(
        "certmon_tls_probe_duration_seconds",
        "How long probing the address took (connect, handshake, validation).",
        ("target", "node"),
        _duration,
    ),
    MetricSpec(
        "certmon_tds_prelogin_info",
        "SQL Server's version and encryption setting from its PRELOGIN response.",
        ("target", "node", "server_version", "encryption"),
        _tds,
    ),
)


def host_port(address: str, port: int) -> str:
    """address:port, with brackets around IPv6 addresses."""
    return f"[{address}]:{port}" if ":" in address else f"{address}:{port}"


class Prober:
    """Probes one address of an endpoint; shared client contexts, one handshake per probe."""

    def __init__(self) -> None:
        self.plain = client_context()
        self.tds8 = client_context((ALPN_TDS8,))
        self.judge = ChainJudge()

    def handshake(self, endpoint: Endpoint, address: str, deadline: Deadline) -> tuple[Handshake, str, str]:
        """(handshake, SQL Server version, encryption) for one address; CollectorError when nothing came back."""
        where = host_port(address, endpoint.port)
        sock = connect(address, endpoint.port, deadline, where)
        try:
            if endpoint.kind == "tds":
                result = probe_tds7(sock, endpoint.sni_value, self.plain, deadline, where)
                return result.handshake, result.server_version, result.encryption
            if endpoint.kind == "tds8":
                result = probe_tds8(sock, endpoint.sni_value, self.tds8, deadline, where)
                return result.handshake, result.server_version, result.encryption
            client = SocketTlsClient(self.plain, sock, deadline, endpoint.sni_value, where)
            handshake = client.handshake()
            if handshake.completed:
                client.close()
            return handshake, "", ""
        finally:
            sock.close()

    def probe(
        self, endpoint: Endpoint, address: str, trust: TrustStore | None, now: datetime, deadline: Deadline
    ) -> AddressProbe:
        """Probe one address and judge what it presented."""
        started = time.monotonic()
        where = host_port(address, endpoint.port)
        try:
            handshake, server_version, encryption = self.handshake(endpoint, address, deadline)
        except CollectorError as err:
            return AddressProbe(address, reason=err.reason, message=err.message, duration_seconds=_since(started))
        presented = []
        for index, der in enumerate(handshake.chain):
            try:
                presented.append(certificate_from_der(der, where))
            except CertificateError as err:
                if index == 0:
                    return AddressProbe(
                        address,
                        reason=Reason.PARSE_ERROR,
                        message=f"the server's certificate cannot be parsed: {err.message}",
                        duration_seconds=_since(started),
                    )
                break
        chain = handshake.chain[: len(presented)]
        verdict = self.judge.verify(chain, endpoint.server_name, trust, now) if trust is not None else None
        error = handshake.error
        return AddressProbe(
            address,
            tuple(presented),
            completed=error is None,
            reason=error.reason if error else None,
            message=error.message if error else "",
            tls_version=handshake.version,
            cipher=handshake.cipher,
            alpn=handshake.alpn,
            chain_valid=verdict.valid if verdict else None,
            chain_error=str(verdict.error or "") if verdict else "",
            chain_message=verdict.message if verdict else "",
            server_version=server_version,
            encryption=encryption,
            duration_seconds=_since(started),
        )


def _since(started: float) -> float:
    return time.monotonic() - started


class TlsCollector(Collector):
    """Probes configured TLS and TDS endpoints; source `tls`, node = the address probed."""

    name = "tls"
    metrics = TLS_METRICS

    def __init__(
        self,
        endpoints: Sequence[Endpoint],
        ca_bundle: Path | None = None,
        *,
        clock: Clock = utc_now,
        resolver: Resolver = resolve_addresses,
        **kwargs: Any,
    ) -> None:
        kwargs.setdefault("concurrency", 4)
        super().__init__(**kwargs)
        self.endpoints = {e.name: e for e in endpoints}
        self.ca_bundle = ca_bundle
        self.clock = clock
        self.resolver = resolver
        self.prober = Prober()
        self.trust = TrustCache()
        self._lock = threading.Lock()
        self._pool: ThreadPoolExecutor | None = None

    def targets(self) -> Sequence[str]:
        """One target per configured endpoint."""
        return tuple(self.endpoints)

    def _addresses(self, endpoint: Endpoint) -> Sequence[str]:
        if endpoint.addresses:
            return endpoint.addresses
        try:
            found = self.resolver(endpoint.host, endpoint.port)
        except OSError as err:
            raise network_error(endpoint.host, err, "name resolution") from err
        if not found:
            raise CollectorError(endpoint.host, Reason.UNREACHABLE, "the name resolves to no address")
        return found

    def collect(self, target: str, deadline: Deadline) -> Observation:
        """Probe every address of one endpoint."""
        endpoint = self.endpoints.get(target)
        if endpoint is None:
            raise CollectorError(target, Reason.CONFIG_ERROR, "no such endpoint configured")
        problems: list[Problem] = []
        trust: TrustStore | None = None
        try:
            trust = self.trust.get(endpoint.ca_bundle or self.ca_bundle)
        except CollectorError as err:
            # The certificates are still worth reporting; only their validation is lost.
            problems.append(Problem(err.reason, f"chain not validated: {err}"))
        addresses = self._addresses(endpoint)
        now = self.clock()
        probes = self._probe_all(endpoint, addresses, trust, now, deadline)
        facts = TlsEndpointFacts(
            endpoint.name, endpoint.host, endpoint.port, endpoint.kind, endpoint.server_name, probes
        )
        if not any(p.presented for p in probes):
            first = probes[0]
            detail = "; ".join(f"{host_port(p.address, endpoint.port)}: {p.message}" for p in probes)
            raise CollectorError(f"tls endpoint {target}", first.reason or Reason.TLS_ERROR, detail)
        return Observation(
            certificates=tuple(self._observations(endpoint, probes)),
            references=tuple(self._references(endpoint, probes)),
            facts=facts,
            problems=(*problems, *_problems(endpoint, probes)),
        )

    def _probe_all(
        self, endpoint: Endpoint, addresses: Sequence[str], trust: TrustStore | None, now: datetime, deadline: Deadline
    ) -> tuple[AddressProbe, ...]:
        if len(addresses) == 1:
            return (self.prober.probe(endpoint, addresses[0], trust, now, deadline),)
        return tuple(self._executor().map(lambda a: self.prober.probe(endpoint, a, trust, now, deadline), addresses))

    def _executor(self) -> ThreadPoolExecutor:
        # One pool for the collector's life: starting threads per collection costs more than a probe.
        with self._lock:
            if self._pool is None:
                self._pool = ThreadPoolExecutor(max_workers=PROBE_THREADS, thread_name_prefix="tls-probe")
            return self._pool

    def close(self) -> None:
        """Stop the probe threads."""
        with self._lock:
            pool, self._pool = self._pool, None
        if pool is not None:
            pool.shutdown(wait=False, cancel_futures=True)

    def _observations(self, endpoint: Endpoint, probes: Sequence[AddressProbe]) -> Iterable[CertObservation]:
        for probe in probes:
            for depth, cert in enumerate(probe.presented):
                yield CertObservation(
                    certificate=cert,
                    source=self.name,
                    node=probe.address,
                    store=endpoint.name,
                    location=f"{endpoint.kind}://{host_port(probe.address, endpoint.port)} "
                    f"(SNI {endpoint.sni_value or 'none'}, chain depth {depth})",
                )

    def _references(self, endpoint: Endpoint, probes: Sequence[AddressProbe]) -> Iterable[CertReference]:
        if not endpoint.role:
            return
        for probe in probes:
            if probe.leaf is not None:
                yield CertReference(
                    role=endpoint.role,
                    thumbprint=probe.leaf.thumbprint,
                    generation=Generation.NEW,
                    reference=f"presented by {endpoint.kind}://{endpoint.host}:{endpoint.port}",
                    source=self.name,
                    node=probe.address,
                )


def _problems(endpoint: Endpoint, probes: Sequence[AddressProbe]) -> Iterable[Problem]:
    for probe in probes:
        where = host_port(probe.address, endpoint.port)
        if probe.reason is not None:
            yield Problem(probe.reason, f"{where}: {probe.message}")
        if probe.chain_valid is False:
            yield Problem(Reason.TLS_ERROR, f"{where}: {probe.chain_error}: {probe.chain_message}")
