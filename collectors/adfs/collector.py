"""AD FS: token-signing and token-decrypting certificates from its published documents, and its SSL certificate.

One target per AD FS base URL. The SSL certificate comes from the same TLS connection that fetches
the federation metadata, the OpenID discovery document and the JWKS (`/adfs/discovery/keys`).
"""

from __future__ import annotations

import http.client
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from cryptography import x509
from OpenSSL import SSL

from collectors.adfs.metadata import parse_federation_metadata, parse_jwks, parse_openid_configuration
from collectors.adfs.rollover import TokenCertificate, rollover_metrics, rollover_states
from collectors.base import Collector, Deadline
from collectors.certificate import Certificate, certificate_from_der
from collectors.errors import CertificateError, CollectorError, Reason
from collectors.model import CertObservation, CertReference, Generation, Observation, Problem
from collectors.tls.chain import ChainVerdict, TrustCache, TrustStore, verify_chain
from collectors.tls.client import Handshake, SocketTlsClient, TlsStream, client_context
from collectors.tls.collector import Clock, host_port, utc_now
from collectors.transport import connect, network_error

METADATA_PATH = "/FederationMetadata/2007-06/FederationMetadata.xml"
OPENID_PATH = "/adfs/.well-known/openid-configuration"
KEYS_PATH = "/adfs/discovery/keys"
MAX_DOCUMENT = 8 * 1024 * 1024

ROLE_SIGNING = "ADFSTokenSigning"
ROLE_DECRYPTING = "ADFSTokenDecrypting"
ROLE_SSL = "ADFSSSL"


def base_url(url: str) -> tuple[str, str, int]:
    """(origin, host, port) of an AD FS URL; only the scheme and authority matter."""
    parts = urlsplit(url.strip())
    if parts.scheme.lower() != "https" or not parts.hostname:
        raise ValueError(f"{url!r} is not an https:// URL with a host name")
    port = parts.port or 443
    host = parts.hostname
    origin = f"https://{f'[{host}]' if ':' in host else host}{'' if port == 443 else f':{port}'}"
    return origin, host, port


class _Connection(http.client.HTTPConnection):
    """HTTPS to an AD FS host (optionally at a fixed address), keeping every handshake's presented chain."""

    default_port = 443

    def __init__(self, host: str, port: int, address: str, context: SSL.Context, deadline: Deadline) -> None:
        super().__init__(host, port, timeout=max(deadline.remaining(), 0.001))
        self.address = address
        self.deadline = deadline
        self.tls_context = context
        self.handshakes: list[Handshake] = []

    def connect(self) -> None:
        """TCP, then a TLS handshake with verification off; the chain is judged by the collector."""
        where = host_port(self.address, self.port)
        sock = connect(self.address, self.port, self.deadline, where)
        client = SocketTlsClient(self.tls_context, sock, self.deadline, self.host, where)
        try:
            handshake = client.handshake()
        except CollectorError:
            sock.close()
            raise
        self.handshakes.append(handshake)
        if handshake.error is not None:
            sock.close()
            raise handshake.error
        self.sock = TlsStream(client, sock)


@dataclass
class AdfsFacts:
    """What one AD FS publishes: documents read, certificate thumbprints by purpose, TLS verdict."""

    url: str
    entity_id: str = ""
    issuer: str = ""
    tls_version: str = ""
    chain_valid: bool | None = None
    chain_error: str = ""
    signing: tuple[str, ...] = ()
    decrypting: tuple[str, ...] = ()
    metadata_signer: str = ""
    jwks_signing: tuple[str, ...] = ()
    documents: dict[str, str] = field(default_factory=dict)
    #: each published token certificate: primary, secondary (next) or superseded (collectors/adfs/rollover.py)
    token_certificates: tuple[TokenCertificate, ...] = ()


class AdfsCollector(Collector):
    """Reads AD FS metadata, discovery document and keys; source `adfs`, node = the AD FS host name."""

    name = "adfs"
    metrics = rollover_metrics()

    def __init__(
        self,
        urls: Sequence[str],
        ca_bundle: Path | None = None,
        *,
        resolve: Mapping[str, str] | None = None,
        require_valid_tls: bool = False,
        clock: Clock = utc_now,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.urls = tuple(dict.fromkeys(base_url(u)[0] for u in urls))
        self.ca_bundle = ca_bundle
        self.resolve = dict(resolve or {})
        self.require_valid_tls = require_valid_tls
        self.clock = clock
        self.context = client_context()
        self.trust = TrustCache()

    def targets(self) -> Sequence[str]:
        """One target per AD FS base URL."""
        return self.urls

    def collect(self, target: str, deadline: Deadline) -> Observation:
        """Read one AD FS."""
        origin, host, port = base_url(target)
        run = _Run(self, origin, host, port, deadline)
        return run.collect()


class _Run:
    """One collection of one AD FS: a connection, the documents, and what they yielded."""

    def __init__(self, owner: AdfsCollector, origin: str, host: str, port: int, deadline: Deadline) -> None:
        self.owner = owner
        self.origin = origin
        self.host = host
        self.port = port
        self.deadline = deadline
        self.address = owner.resolve.get(host, host)
        self.connection = _Connection(host, port, self.address, owner.context, deadline)
        self.facts = AdfsFacts(origin)
        self.problems: list[Problem] = []
        self.certificates: list[CertObservation] = []
        self.by_role: dict[str, dict[str, Certificate]] = {ROLE_SIGNING: {}, ROLE_DECRYPTING: {}}
        self.ssl: Certificate | None = None

    def collect(self) -> Observation:
        try:
            return self._collect()
        finally:
            self.connection.close()

    def _collect(self) -> Observation:
        try:
            self.connection.connect()
        except CollectorError as err:
            if not self.connection.handshakes:
                raise CollectorError(self.origin, err.reason, err.message) from err
            self.problems.append(Problem(err.reason, f"{self.origin}: {err.message}"))
        self._tls(self.connection.handshakes[0])
        if self.connection.sock is None or self._refuse_documents():
            return self._observation()
        failures: list[CollectorError] = []
        for document, read in (("metadata", self._metadata), ("keys", self._keys)):
            try:
                read()
                self.facts.documents[document] = "ok"
            except CollectorError as err:
                self.facts.documents[document] = str(err.reason)
                self.problems.append(Problem(err.reason, str(err)))
                failures.append(err)
        if len(failures) == 2:
            first = failures[0]
            raise CollectorError(first.source, first.reason, f"{first.message}; and {failures[1]}")
        return self._observation()

    def _refuse_documents(self) -> bool:
        if self.owner.require_valid_tls and self.facts.chain_valid is False:
            self.problems.append(
                Problem(Reason.TLS_ERROR, f"{self.origin}: documents not read: the TLS chain does not validate")
            )
            return True
        return False

    def _tls(self, handshake: Handshake) -> None:
        chain = [self._certificate(der, f"{self.origin} TLS") for der in handshake.chain]
        self.facts.tls_version = handshake.version
        verdict = self._verdict(handshake.chain)
        if verdict is not None:
            self.facts.chain_valid = verdict.valid
            self.facts.chain_error = str(verdict.error or "")
            if not verdict.valid:
                self.problems.append(Problem(Reason.TLS_ERROR, f"{self.origin}: {verdict.error}: {verdict.message}"))
        for depth, cert in enumerate(chain):
            self._observe(cert, "tls", f"{self.origin} TLS chain depth {depth}")
        if chain:
            self.ssl = chain[0]

    def _verdict(self, ders: Sequence[bytes]) -> ChainVerdict | None:
        try:
            trust: TrustStore = self.owner.trust.get(self.owner.ca_bundle)
        except CollectorError as err:
            self.problems.append(Problem(err.reason, f"chain not validated: {err}"))
            return None
        try:
            parsed = [x509.load_der_x509_certificate(d) for d in ders]
        except (ValueError, x509.InvalidVersion):
            return ChainVerdict(False, None, "the presented certificate cannot be parsed")
        return verify_chain(parsed, self.host, trust, self.owner.clock())

    def _certificate(self, der: bytes, where: str) -> Certificate:
        try:
            return certificate_from_der(der, where)
        except CertificateError as err:
            raise CollectorError(where, Reason.PARSE_ERROR, err.message) from err

    def _observe(self, cert: Certificate, store: str, location: str) -> None:
        self.certificates.append(
            CertObservation(certificate=cert, source=AdfsCollector.name, node=self.host, store=store, location=location)
        )

    def _get(self, path: str) -> bytes:
        url = f"{self.origin}{path}"
        try:
            self.connection.request("GET", path, headers={"Accept": "*/*", "User-Agent": "certmon"})
            response = self.connection.getresponse()
            body = response.read(MAX_DOCUMENT + 1)
        except CollectorError as err:
            raise CollectorError(url, err.reason, err.message) from err
        except http.client.HTTPException as err:
            self.connection.close()
            raise CollectorError(url, Reason.PROTOCOL_ERROR, f"invalid HTTP response: {type(err).__name__}") from err
        except OSError as err:
            self.connection.close()
            raise network_error(url, err, "HTTP request") from err
        if response.status != 200:
            reason = Reason.NOT_FOUND if response.status == 404 else Reason.HTTP_ERROR
            raise CollectorError(url, reason, f"HTTP {response.status} {response.reason}")
        if len(body) > MAX_DOCUMENT:
            raise CollectorError(url, Reason.PARSE_ERROR, f"document is larger than {MAX_DOCUMENT} bytes")
        return body

    def _metadata(self) -> None:
        url = f"{self.origin}{METADATA_PATH}"
        metadata = parse_federation_metadata(self._get(METADATA_PATH), url)
        self.facts.entity_id = metadata.entity_id
        for role, ders in ((ROLE_SIGNING, metadata.signing), (ROLE_DECRYPTING, metadata.encryption)):
            for der in ders:
                cert = self._certificate(der, url)
                self.by_role[role][cert.thumbprint] = cert
                self._observe(cert, "FederationMetadata", f"{url} ({role})")
        if metadata.signer is not None:
            self.facts.metadata_signer = self._certificate(metadata.signer, url).thumbprint

    def _keys(self) -> None:
        path = KEYS_PATH
        try:
            config = parse_openid_configuration(self._get(OPENID_PATH), f"{self.origin}{OPENID_PATH}")
            self.facts.issuer = config.issuer
            path = self._same_origin_path(config.jwks_uri)
        except CollectorError as err:
            # AD FS 2012 R2 has no OpenID discovery; its keys endpoint is still worth trying.
            self.problems.append(Problem(err.reason, str(err)))
        url = f"{self.origin}{path}"
        keys = parse_jwks(self._get(path), url)
        found = []
        for key in keys:
            leaf = self._certificate(key.chain[0], url)
            found.append(leaf.thumbprint)
            if key.use in ("sig", ""):
                self.by_role[ROLE_SIGNING][leaf.thumbprint] = leaf
            self._observe(leaf, "discovery/keys", f"{url} kid={key.kid}")
            for der in key.chain[1:]:
                self._observe(self._certificate(der, url), "discovery/keys", f"{url} kid={key.kid} chain")
        self.facts.jwks_signing = tuple(found)

    def _same_origin_path(self, uri: str) -> str:
        parts = urlsplit(uri)
        try:
            origin = base_url(uri)[0]
        except ValueError:
            origin = ""
        if origin.lower() != self.origin.lower():
            # Never follow a document to another host: fall back to the well-known path.
            self.problems.append(
                Problem(Reason.BAD_OUTPUT, f"{self.origin}: jwks_uri {uri} is on another origin; read {KEYS_PATH}")
            )
            return KEYS_PATH
        return parts.path + (f"?{parts.query}" if parts.query else "") or KEYS_PATH

    def _observation(self) -> Observation:
        references = list(self._role_references())
        if self.ssl is not None:
            references.append(
                CertReference(ROLE_SSL, self.ssl.thumbprint, Generation.NEW, f"{self.origin} TLS", "adfs", self.host)
            )
        self.facts.signing = tuple(self.by_role[ROLE_SIGNING])
        self.facts.decrypting = tuple(self.by_role[ROLE_DECRYPTING])
        self.facts.token_certificates = rollover_states(self.by_role, self.facts.metadata_signer)
        return Observation(
            certificates=tuple(self.certificates),
            references=tuple(references),
            facts=self.facts,
            problems=tuple(self.problems),
        )

    def _role_references(self) -> Iterable[CertReference]:
        for role, certs in self.by_role.items():
            newest = max(certs.values(), key=lambda c: c.not_before, default=None)
            for cert in certs.values():
                # AD FS rollover publishes both certificates; the one issued last is the next one.
                generation = Generation.NEW if cert is newest else Generation.OLD
                yield CertReference(role, cert.thumbprint, generation, f"{self.origin} {role}", "adfs", self.host)
