"""Source `servicefabric`: the running cluster as its HTTP gateway reports it. One target = the cluster.

One verified connection per collection reads the cluster configuration (required: without it the
collection fails), then the code version, the configuration upgrade status and progress, the
cluster's health with the nodes' certificate-expiry events, and the applications' certificate
parameters; a part that fails becomes a problem beside the rest, never a failed collection.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

from collectors.base import Collector, Deadline
from collectors.clusterconfig import cluster_config_metrics, cluster_references
from collectors.errors import CollectorError, Reason
from collectors.model import CertObservation, CertReference, Generation, MetricSpec, Observation, Problem
from collectors.servicefabric import api
from collectors.servicefabric.client import Clock, GatewaySession
from collectors.servicefabric.connector import Connector, GatewayConfig
from collectors.servicefabric.evidence import rotation_supported
from collectors.servicefabric.model import GatewayFacts, NodeCertificateEvent, NodeHealth

SOURCE = "servicefabric"
NODE_HEALTH_MODES = ("unhealthy", "all", "none")

Samples = Iterable[tuple[tuple[str, ...], float]]


def utc_now() -> datetime:
    """The wall clock, in UTC."""
    return datetime.now(UTC)


def _code_version(facts: GatewayFacts, target: str) -> Samples:
    if facts.code_version:
        yield (facts.code_version,), 1.0


def _rotation_supported(facts: GatewayFacts, target: str) -> Samples:
    supported = rotation_supported(facts.code_version)
    if supported is not None:
        yield (), 1.0 if supported else 0.0


def _upgrade_state(facts: GatewayFacts, target: str) -> Samples:
    status = facts.upgrade_status
    if status is not None:
        manifest = "" if status.manifest_version is None else str(status.manifest_version)
        yield (status.state, status.running_version, manifest), 1.0


def _replica_timeout(facts: GatewayFacts, target: str) -> Samples:
    progress = facts.upgrade_progress
    if progress is not None and progress.replica_set_check_timeout_seconds is not None:
        yield (), float(progress.replica_set_check_timeout_seconds)


def _domain_duration(facts: GatewayFacts, target: str) -> Samples:
    progress = facts.upgrade_progress
    if progress is not None and facts.upgrade_in_progress and progress.domain_duration_seconds is not None:
        yield (progress.state, progress.current_domain), progress.domain_duration_seconds


def _app_certs(facts: GatewayFacts, target: str) -> Samples:
    for app in facts.applications or ():
        yield (app.application, app.parameter, app.role, app.thumbprint), 1.0


def _node_cert_expiry(facts: GatewayFacts, target: str) -> Samples:
    for event in facts.certificate_events:
        if event.expires_at is not None:
            labels = (event.node, event.certificate, event.thumbprint, event.health_state)
            yield labels, event.expires_at.timestamp()


SF_METRICS: tuple[MetricSpec, ...] = (
    *cluster_config_metrics(SOURCE, lambda facts: facts.config),
    MetricSpec(
        "certmon_sf_code_version_info", "Service Fabric code version (GetClusterVersion).", ("version",), _code_version
    ),
    MetricSpec(
        "certmon_sf_rotation_supported",
        "1 when the cluster's Service Fabric version supports certificate rotation (not 7.0.x or 7.1.x).",
        (),
        _rotation_supported,
    ),
    MetricSpec(
        "certmon_sf_upgrade_state_info",
        "1 for the configuration upgrade's UpgradeState, the configuration version the cluster runs now "
        "(ConfigVersion) and the cluster manifest version (ProgressStatus).",
        ("state", "running_config_version", "manifest_version"),
        _upgrade_state,
    ),
    MetricSpec(
        "certmon_sf_replica_set_check_timeout_seconds",
        "UpgradeReplicaSetCheckTimeout of the running or last upgrade (4294967295 = reset to 49710.06:28:15).",
        (),
        _replica_timeout,
    ),
    MetricSpec(
        "certmon_sf_upgrade_domain_duration_seconds",
        "Time the upgrade has spent on its current upgrade domain.",
        ("state", "domain"),
        _domain_duration,
    ),
    MetricSpec(
        "certmon_sf_app_cert_info",
        "Thumbprints the running applications' parameters carry, with the role the parameter map gives them.",
        ("application", "parameter", "role", "thumbprint"),
        _app_certs,
    ),
    MetricSpec(
        "certmon_sf_node_cert_expiry_timestamp_seconds",
        "Certificate expiry as each node reports it in its own health (System.FabricNode Certificate_*), Unix time.",
        ("node", "certificate", "thumbprint", "health_state"),
        _node_cert_expiry,
    ),
)


class ServiceFabricCollector(Collector):
    """Reads a cluster through its HTTP gateway with a client certificate."""

    name = SOURCE
    metrics = SF_METRICS

    def __init__(
        self,
        config: GatewayConfig,
        *,
        node_health: str = "unhealthy",
        parameter_roles: Mapping[str, str] | None = None,
        clock: Clock = utc_now,
        **kwargs: Any,
    ) -> None:
        if node_health not in NODE_HEALTH_MODES:
            raise ValueError(f"node_health {node_health!r} is not one of {', '.join(NODE_HEALTH_MODES)}")
        super().__init__(**kwargs)
        self.config = config
        self.connector = Connector(config, clock)
        self.node_health = node_health
        self.parameter_roles = dict(api.DEFAULT_PARAMETER_ROLES if parameter_roles is None else parameter_roles)

    def targets(self) -> Sequence[str]:
        """The cluster."""
        return (self.config.name,)

    def collect(self, target: str, deadline: Deadline) -> Observation:
        """Read the cluster over one connection."""
        session = self.connector.open(self.config.client_certificate, deadline)
        try:
            return _Run(self, session, target).observation()
        finally:
            session.close()


class _Run:
    """One collection: the calls made, the facts gathered and the problems met."""

    def __init__(self, owner: ServiceFabricCollector, session: GatewaySession, target: str) -> None:
        self.owner = owner
        self.session = session
        self.target = target
        self.problems: list[Problem] = []

    def _optional(self, what: str, path: str, params: Mapping[str, str]) -> Any:
        try:
            return self.session.get(path, params)
        except CollectorError as err:
            if err.reason in (Reason.AUTH_FAILED, Reason.TLS_ERROR, Reason.TIMEOUT):
                raise
            self.problems.append(Problem(err.reason, f"{what}: {err}"))
            return None

    def _parsed(self, what: str, parse: Any, answer: Any, where: str) -> Any:
        if answer is None:
            return None
        try:
            return parse(answer, where)
        except CollectorError as err:
            self.problems.append(Problem(err.reason, f"{what}: {err}"))
            return None

    def observation(self) -> Observation:
        session = self.session
        url = session.gateway.url
        config_params = {**api.API_6_0, "ConfigurationApiVersion": api.CONFIGURATION_API_VERSION}
        config, text = api.parse_configuration(
            session.get(api.GET_CONFIGURATION, config_params), f"{url}{api.GET_CONFIGURATION}"
        )
        version = self._parsed(
            "cluster version",
            api.parse_version,
            self._optional("cluster version", api.GET_VERSION, {"api-version": "6.4"}),
            f"{url}{api.GET_VERSION}",
        )
        status = self._parsed(
            "configuration upgrade status",
            api.parse_upgrade_status,
            self._optional("configuration upgrade status", api.GET_UPGRADE_STATUS, api.API_6_0),
            f"{url}{api.GET_UPGRADE_STATUS}",
        )
        progress = self._parsed(
            "upgrade progress",
            api.parse_upgrade_progress,
            self._optional("upgrade progress", api.GET_UPGRADE_PROGRESS, api.API_6_0),
            f"{url}{api.GET_UPGRADE_PROGRESS}",
        )
        health, nodes = self._health()
        events = tuple(self._certificate_events(nodes, config))
        applications, names = self._applications()
        server = session.presented[0] if session.presented else None
        facts = GatewayFacts(
            gateway=url,
            config=config,
            config_text=text,
            code_version=version or (progress.code_version if progress else ""),
            upgrade_status=status,
            upgrade_progress=progress,
            cluster_health=health,
            nodes_health=nodes,
            certificate_events=events,
            applications=applications,
            application_names=names,
            server_certificate=server,
            client_thumbprint=session.identity.thumbprint if session.identity else "",
        )
        return Observation(
            certificates=tuple(self._presented()),
            references=(*cluster_references(config, SOURCE, f"gateway {self.target}"), *self._app_references(facts)),
            facts=facts,
            problems=tuple(self.problems),
        )

    def _health(self) -> tuple[str, tuple[NodeHealth, ...]]:
        url = self.session.gateway.url
        answer = self._optional("cluster health", api.GET_CLUSTER_HEALTH, api.API_6_0)
        parsed = self._parsed("cluster health", api.parse_cluster_health, answer, f"{url}{api.GET_CLUSTER_HEALTH}")
        return parsed if parsed is not None else ("", ())

    def _certificate_events(self, nodes: tuple[NodeHealth, ...], config: Any) -> Iterable[NodeCertificateEvent]:
        mode = self.owner.node_health
        if mode == "none":
            return
        names = [n.name for n in nodes] or [n.name for n in config.nodes]
        states = {n.name: n.health_state for n in nodes}
        for name in names:
            if mode == "unhealthy" and states.get(name) not in ("Warning", "Error"):
                continue
            path = api.node_health_path(name)
            answer = self._optional(f"health of node {name}", path, api.API_6_0)
            if answer is None:
                continue
            try:
                yield from api.certificate_events(name, answer, f"{self.session.gateway.url}{path}")
            except CollectorError as err:
                self.problems.append(Problem(err.reason, f"health of node {name}: {err}"))

    def _applications(self) -> tuple[tuple[Any, ...] | None, tuple[str, ...]]:
        try:
            found, names, problems = api.read_applications(self.session, self.owner.parameter_roles)
        except CollectorError as err:
            if err.reason in (Reason.AUTH_FAILED, Reason.TLS_ERROR, Reason.TIMEOUT):
                raise
            self.problems.append(Problem(err.reason, f"applications: {err}"))
            return None, ()
        self.problems += [Problem(Reason.BAD_OUTPUT, f"applications: {p}") for p in problems]
        return found, names

    def _presented(self) -> Iterable[CertObservation]:
        gateway = self.session.gateway
        for depth, cert in enumerate(self.session.presented):
            yield CertObservation(
                certificate=cert,
                source=SOURCE,
                node=gateway.host,
                store="gateway",
                location=f"{gateway.url} (presented by the HTTP gateway, chain depth {depth})",
            )

    def _app_references(self, facts: GatewayFacts) -> Iterable[CertReference]:
        for app in facts.applications or ():
            yield CertReference(
                app.role, app.thumbprint, Generation.NEW, f"{app.application} parameter {app.parameter}", SOURCE
            )
