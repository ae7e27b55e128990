"""The WinRM source: every node's certificate stores, key providers and SQL Server TLS certificate."""

from __future__ import annotations

import hashlib
import logging
import threading
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from collectors.base import Collector, Deadline
from collectors.certificate import certificate_from_der, normalize_thumbprint
from collectors.configtemplate import load_config_template
from collectors.errors import CertificateError, CollectorError, Reason, ThumbprintError
from collectors.model import (
    DEFAULT_STORE,
    CertObservation,
    CertReference,
    Generation,
    MetricSpec,
    Observation,
    Problem,
)
from collectors.winrm.command import ApprovedCommand, CommandOutcome, run_in
from collectors.winrm.keyacl import CertKeyAccess, LocalGroup, key_acl_read_samples, key_reader_samples
from collectors.winrm.output import Inventory, interpret, read_stderr
from collectors.winrm.packages import PACKAGES_COMMAND, interpret_packages, package_references
from collectors.winrm.script import inventory_command
from collectors.winrm.session import WinRMSession
from collectors.winrm.transport import DEFAULT_PORTS, TRANSPORTS, Endpoint, Transport

log = logging.getLogger("certmon.winrm")

SOURCE = "winrm"
PROVIDER_KINDS = ("capi", "cng")


@dataclass(frozen=True)
class WinRMOptions:
    """How to reach every node: transport, credentials, trust, and what to read."""

    transport: Transport = "ntlm"
    port: int | None = None
    username: str = ""
    password: str = field(default="", repr=False)
    ca_bundle: str | None = None
    server_thumbprint: str | None = None
    operation_timeout: float = 20.0
    stores: tuple[str, ...] = (DEFAULT_STORE,)
    #: negotiate: NTLM when Kerberos is not possible (off: Kerberos only)
    allow_ntlm: bool = False
    #: negotiate: the service class of the nodes' SPNs (SERVICE/<node host>)
    spn_service: str = "HTTP"
    #: also read the running packages' *.Package.Current.xml thumbprint settings (one more command per node)
    package_settings: bool = False

    def __post_init__(self) -> None:
        # Only transports that encrypt everything: NTLM/Kerberos message encryption, or TLS.
        if self.transport not in TRANSPORTS:
            raise ValueError(
                f"WinRM transport {self.transport!r} is refused: it would send credentials or data unencrypted; "
                f"use one of {', '.join(TRANSPORTS)} (message encryption over HTTP, or Basic over HTTPS)"
            )


SQL_ROLE = "SQLCluster"


@dataclass(frozen=True, slots=True)
class KeyProvider:
    """How the private key of a certificate in a store is held (CAPI or CNG), and by which provider."""

    store: str
    thumbprint: str
    subject_cn: str
    issuer_cn: str
    kind: str
    provider: str


@dataclass(frozen=True, slots=True)
class SqlTlsCertificate:
    """The certificate a SQL Server instance on the node is configured to use ('' = none, self-signed)."""

    instance: str
    thumbprint: str


@dataclass(frozen=True, slots=True)
class NodeFacts:
    """Per-node facts beyond the certificates themselves."""

    node: str
    url: str
    stores: tuple[str, ...]
    key_providers: tuple[KeyProvider, ...]
    sql_instances: tuple[SqlTlsCertificate, ...]
    key_access: tuple[CertKeyAccess, ...] = ()
    #: members of the local groups named by the key access rules (Get-LocalGroupMember)
    local_groups: tuple[LocalGroup, ...] = ()


def _key_provider_samples(facts: Any, target: str) -> list[tuple[tuple[str, ...], float]]:
    if not isinstance(facts, NodeFacts):
        return []
    return [
        ((SOURCE, facts.node, k.store, k.thumbprint, k.subject_cn, k.issuer_cn, k.kind, k.provider), 1.0)
        for k in facts.key_providers
        if k.kind in PROVIDER_KINDS
    ]


def _sql_samples(facts: Any, target: str) -> list[tuple[tuple[str, ...], float]]:
    if not isinstance(facts, NodeFacts):
        return []
    return [((facts.node, s.instance, s.thumbprint), 1.0) for s in facts.sql_instances]


def _key_reader_samples(facts: Any, target: str) -> list[tuple[tuple[str, ...], float]]:
    return key_reader_samples(facts.node, facts.key_access) if isinstance(facts, NodeFacts) else []


def _key_acl_read_samples(facts: Any, target: str) -> list[tuple[tuple[str, ...], float]]:
    return key_acl_read_samples(facts.node, facts.key_access) if isinstance(facts, NodeFacts) else []


SessionFactory = Callable[[Endpoint], WinRMSession]


class WinRMCollector(Collector):
    """Reads each node's stores with one PowerShell run per cycle, over a connection kept between cycles."""

    name = SOURCE
    metrics = (
        MetricSpec(
            "certmon_cert_key_provider_info",
            "1 for each certificate whose private key is on the node, by provider kind "
            "(capi or cng; Service Fabric cannot use CNG keys).",
            ("source", "node", "store", "thumbprint", "subject_cn", "issuer_cn", "provider", "provider_name"),
            _key_provider_samples,
        ),
        MetricSpec(
            "certmon_sql_tls_cert_info",
            "1 for each SQL Server instance, with the thumbprint of its configured TLS certificate "
            "(empty: none configured, SQL Server uses a self-signed certificate).",
            ("node", "instance", "thumbprint"),
            _sql_samples,
        ),
        MetricSpec(
            "certmon_cert_key_readers_info",
            "1 for each identity the private key file's ACL allows to read the key (and no rule denies), "
            "by SID and account name (empty when the SID does not resolve on the node).",
            ("source", "node", "store", "thumbprint", "subject_cn", "sid", "account"),
            _key_reader_samples,
        ),
        MetricSpec(
            "certmon_cert_key_acl_read",
            "1 when the ACL of a certificate's private key file was read, 0 when the inventory could not "
            "read it (the reason is a problem of the winrm source).",
            ("source", "node", "store", "thumbprint", "subject_cn"),
            _key_acl_read_samples,
        ),
    )

    def __init__(
        self,
        options: WinRMOptions,
        *,
        nodes: Sequence[str] = (),
        addresses: Mapping[str, str] | None = None,
        config_template: Path | None = None,
        use_template_addresses: bool = False,
        session_factory: SessionFactory = WinRMSession,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.options = options
        self.nodes = tuple(nodes)
        self.addresses = dict(addresses or {})
        self.config_template = config_template
        self.use_template_addresses = use_template_addresses
        self._session_factory = session_factory
        self._command = inventory_command(options.stores)
        self._sessions: dict[str, WinRMSession] = {}
        self._last_output: dict[str, tuple[bytes, Observation]] = {}
        self._template_addresses: dict[str, str] = {}
        self._last_targets: tuple[str, ...] | None = None
        self._lock = threading.Lock()

    # -- targets --------------------------------------------------------------------------

    def targets(self) -> Sequence[str]:
        """Configured nodes, then the VMs and SQL VMs of ConfigTemplate.xml."""
        found = list(self.nodes)
        if self.config_template is not None:
            try:
                template = load_config_template(self.config_template, Generation.NEW)
            except CollectorError:
                if self._last_targets is None:
                    raise
                # Keep collecting the nodes we know; the configtemplate source reports the file's problem.
                log.warning("winrm: cannot read %s; keeping the previous node list", self.config_template)
                return self._last_targets
            addresses = {vm.name: vm.ip_address for vm in template.vms() if vm.ip_address}
            with self._lock:
                self._template_addresses = addresses
            found += [vm.name for vm in template.vms()]
            found += list(template.sql_vms)
        targets = tuple(dict.fromkeys(name for name in found if name))
        self._last_targets = targets
        return targets

    def endpoint(self, node: str) -> Endpoint:
        """Where a node is reached: its configured address, its template IP (when asked), or its name."""
        with self._lock:
            template_address = self._template_addresses.get(node, "")
        address = self.addresses.get(node) or (template_address if self.use_template_addresses else "") or node
        host, port = split_address(address, self.options.port or DEFAULT_PORTS[self.options.transport])
        options = self.options
        return Endpoint(
            node=node,
            host=host,
            port=port,
            transport=options.transport,
            username=options.username,
            password=options.password,
            ca_bundle=options.ca_bundle,
            server_thumbprint=options.server_thumbprint,
            operation_timeout=options.operation_timeout,
            allow_ntlm=options.allow_ntlm,
            spn_service=options.spn_service,
            # The server closes a shell idle this long: a few cycles, so a dead daemon leaves none behind.
            shell_idle_timeout=min(7200.0, max(600.0, 3 * self.interval)),
        )

    # -- collection -----------------------------------------------------------------------

    def _session(self, node: str) -> WinRMSession:
        endpoint = self.endpoint(node)
        with self._lock:
            session = self._sessions.get(node)
            if session is not None and session.endpoint == endpoint:
                return session
            self._sessions[node] = fresh = self._session_factory(endpoint)
        if session is not None:
            # The node moved (template address changed): let the old connection go in the background.
            threading.Thread(target=session.close, args=(2.0,), daemon=True).start()
        return fresh

    def session(self, node: str) -> WinRMSession | None:
        """The live session of a node, if one was opened (for diagnostics and tests)."""
        with self._lock:
            return self._sessions.get(node)

    def collect(self, target: str, deadline: Deadline) -> Observation:
        """Run the inventory script on one node and model what it printed (and the package settings, if asked)."""
        session = self._session(target)
        executable, arguments = self._command
        # Finish a little before the runner gives up, so the error says what the node was doing.
        inner = Deadline(deadline.at - min(0.5, 0.1 * deadline.remaining()))
        result = session.run(executable, arguments, inner)
        url = session.endpoint.url
        # Stores rarely change: the same bytes as last cycle give the same observation, for free. The output
        # is hashed where it is (tens of MiB for a store of 50,000 certificates), not copied behind a prefix.
        digest = hashlib.sha256(b"%d\0%s\0%s\0" % (result.exit_code, url.encode(), result.stderr))
        digest.update(result.stdout)
        with self._lock:
            cached = self._last_output.get(target)
        if cached is not None and cached[0] == digest.digest():
            return self._with_packages(session, target, cached[1], inner)
        inventory = interpret(f"{target} ({url})", result.stdout, result.stderr, result.exit_code)
        observation = self._observation(target, url, inventory)
        with self._lock:
            self._last_output[target] = (digest.digest(), observation)
        return self._with_packages(session, target, observation, inner)

    def _with_packages(
        self, session: WinRMSession, node: str, observation: Observation, deadline: Deadline
    ) -> Observation:
        """The observation plus the running packages' thumbprint settings (packages.py), when asked for."""
        if not self.options.package_settings:
            return observation
        result = session.run(*PACKAGES_COMMAND, deadline)
        errors = read_stderr(result.stderr).errors
        if result.exit_code != 0 or errors:
            message = f"{node}: reading the package settings failed (exit {result.exit_code}): {'; '.join(errors)}"
            return replace(observation, problems=(*observation.problems, Problem(Reason.SCRIPT_ERROR, message)))
        settings, problems = interpret_packages(node, result.stdout)
        return replace(
            observation,
            references=(*observation.references, *package_references(node, settings, self.name)),
            problems=(*observation.problems, *problems),
        )

    def _observation(self, node: str, url: str, inventory: Inventory) -> Observation:
        certificates: list[CertObservation] = []
        keys: list[KeyProvider] = []
        access: list[CertKeyAccess] = []
        problems = [Problem(Reason.SCRIPT_ERROR, f"{node}: {text}") for text in inventory.warnings]
        requested = set(self.options.stores)
        for listing in inventory.stores:
            if listing.store not in requested:
                message = f"inventory output lists store {listing.store!r}, which was not asked for"
                raise CollectorError(f"{node} ({url})", Reason.BAD_OUTPUT, message)
            if listing.error:
                problems.append(Problem(Reason.SCRIPT_ERROR, f"{node} {listing.store}: {listing.error}"))
            for item in listing.certificates:
                try:
                    cert = certificate_from_der(item.der, f"{node} {listing.store}")
                except CertificateError as err:
                    problems.append(Problem(err.reason, str(err)))
                    continue
                certificates.append(
                    CertObservation(
                        certificate=cert,
                        source=self.name,
                        node=node,
                        store=listing.store,
                        has_private_key=item.has_private_key,
                        key_provider=item.key_kind or None,
                        location=f"Cert:\\{listing.store}\\{cert.thumbprint}",
                    )
                )
                if item.key_kind:
                    where = (listing.store, cert.thumbprint, cert.subject_cn, cert.issuer_cn)
                    keys.append(KeyProvider(*where, item.key_kind, item.provider))
                if item.key_access is not None:
                    found = item.key_access
                    access.append(
                        CertKeyAccess(
                            listing.store, cert.thumbprint, cert.subject_cn, found.file, found.readers(), found.error
                        )
                    )
                    if found.error:
                        message = f"{node} {listing.store} {cert.thumbprint}: cannot read the private key's ACL: "
                        problems.append(Problem(Reason.SCRIPT_ERROR, message + found.error))
        sql = []
        for instance in inventory.sql:
            thumbprint = ""
            if instance.thumbprint.strip():
                try:
                    thumbprint = normalize_thumbprint(instance.thumbprint)
                except ThumbprintError as err:
                    problems.append(Problem(Reason.PARSE_ERROR, f"{node} SQL Server {instance.instance}: {err}"))
                    continue
            sql.append(SqlTlsCertificate(instance.instance, thumbprint))
        facts = NodeFacts(node, url, self.options.stores, tuple(keys), tuple(sql), tuple(access), inventory.groups)
        # The certificate SQL Server is configured with is in use: a reference, so the old SQL
        # certificate is not "safe to remove" while an instance still points at it.
        references = tuple(
            CertReference(
                SQL_ROLE,
                s.thumbprint,
                Generation.NEW,
                f"{node} SQL Server {s.instance} TLS certificate",
                self.name,
                node,
            )
            for s in sql
            if s.thumbprint
        )
        return Observation(
            certificates=tuple(certificates), references=references, facts=facts, problems=tuple(problems)
        )

    def run_approved(self, node: str, command: ApprovedCommand, deadline: Deadline) -> CommandOutcome:
        """Run an operator-approved command on a node, in a session of its own (see command.py)."""
        return run_in(self._session_factory(self.endpoint(node)), command, deadline)

    def command_session(self, node: str) -> WinRMSession:
        """A new session to a node for a remediation's sequence of commands (the caller closes it)."""
        return self._session_factory(self.endpoint(node))

    def close(self) -> None:
        """Delete every node's shell and drop the connections, in parallel and briefly."""
        with self._lock:
            sessions = list(self._sessions.values())
            self._sessions.clear()
        if not sessions:
            return
        with ThreadPoolExecutor(max_workers=min(16, len(sessions)), thread_name_prefix="winrm-close") as pool:
            for session in sessions:
                pool.submit(session.close, 2.0)


def split_address(address: str, default_port: int) -> tuple[str, int]:
    """`host`, `host:port`, `[v6]:port` or a bare IPv6 address into (host, port); ValueError when malformed."""
    text = address.strip()
    if text.startswith("["):
        host, _, rest = text[1:].partition("]")
        port_text = rest[1:] if rest.startswith(":") else ""
    elif text.count(":") == 1:
        host, port_text = text.split(":")
    else:
        host, port_text = text, ""
    if not host:
        raise ValueError(f"address {address!r} has no host")
    if not port_text:
        return host, default_port
    if not port_text.isdigit() or not 0 < int(port_text) < 65536:
        raise ValueError(f"address {address!r} has an invalid port")
    return host, int(port_text)
