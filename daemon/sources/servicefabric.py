"""The `servicefabric` source: the cluster's HTTP gateway, and the gateway access the SF remediations use."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from datetime import datetime
from pathlib import Path
from typing import Any, Literal

from pydantic import Field, SecretStr, field_validator

from collectors.base import Collector
from collectors.certificate import normalize_thumbprint
from collectors.errors import CollectorError
from collectors.servicefabric.api import DEFAULT_PARAMETER_ROLES
from collectors.servicefabric.client import GatewayUrl, ServerTrust
from collectors.servicefabric.collector import ServiceFabricCollector
from collectors.servicefabric.connector import Connector, GatewayConfig
from collectors.servicefabric.identity import CertificateFile, load_identity
from daemon.sources.base import ConfigError, Paths, SourceSettings, Strict, secret_bytes
from remediations.sfgateway import OPTION, GatewayAccess


class GatewayCertificateSettings(Strict):
    """A client certificate for the Service Fabric gateway: a PFX, or a PEM certificate with its key."""

    path: Path
    #: PEM private key when it is not in the certificate file
    key_path: Path | None = None
    password: SecretStr | None = None
    password_file: Path | None = None

    def password_bytes(self) -> bytes | None:
        """The PFX or key password from the environment or its file."""
        return secret_bytes(self.password, self.password_file)


class ServiceFabricSource(SourceSettings):
    """The cluster's HTTP gateway (GetClusterConfiguration, upgrade status, health, applications)."""

    interval_seconds: float = Field(120.0, gt=0)
    timeout_seconds: float = Field(30.0, gt=0)
    #: the target name (default: the first gateway's host)
    name: str | None = None
    #: https://node:19080 URLs, tried in order when a node does not answer
    gateways: list[str] = Field(default_factory=list)
    #: host name -> address to connect to
    resolve: dict[str, str] = Field(default_factory=dict)
    #: CA bundle that validates the gateway's certificate (unset, without pins: the system's roots)
    ca_bundle: Path | None = None
    #: accept the gateway when its certificate has one of these thumbprints (pin old and new during a rotation)
    server_thumbprints: list[str] = Field(default_factory=list)
    #: the name the gateway's certificate must carry (default: the URL's host)
    server_name: str | None = None
    #: certificate for reading (a read-only client is enough)
    client_certificate: GatewayCertificateSettings | None = None
    #: admin certificates for the SF remediations; the one the running configuration lists as admin is used
    admin_certificates: list[GatewayCertificateSettings] = Field(default_factory=list)
    #: which nodes' health to read for certificate-expiry events: unhealthy (default), all, none
    node_health: Literal["unhealthy", "all", "none"] = "unhealthy"
    #: application parameter -> certificate role, over the built-in defaults
    parameter_roles: dict[str, str] = Field(default_factory=dict)
    #: an upgrade that spends longer than this on one upgrade domain is stuck
    upgrade_stuck_after_minutes: float = Field(60.0, gt=0)
    #: how long `remediate --apply` follows a configuration upgrade it started
    follow_upgrade_seconds: float = Field(60.0, ge=0)

    @field_validator("gateways")
    @classmethod
    def _https(cls, urls: list[str]) -> list[str]:
        for url in urls:
            GatewayUrl.parse(url)
        return urls

    @field_validator("server_thumbprints")
    @classmethod
    def _thumbprints(cls, values: list[str]) -> list[str]:
        return [normalize_thumbprint(v) for v in values]

    def target(self) -> str:
        """The cluster's target name."""
        return self.name or (GatewayUrl.parse(self.gateways[0]).host if self.gateways else "servicefabric")


def _certificate_file(section: GatewayCertificateSettings) -> CertificateFile:
    return CertificateFile(section.path, section.key_path, section.password_bytes())


def gateway_config(section: ServiceFabricSource) -> GatewayConfig | None:
    """The Service Fabric gateway's configuration (for the collector and the SF remediations), or None."""
    if not section.enabled or not section.gateways:
        return None
    return GatewayConfig(
        name=section.target(),
        gateways=tuple(GatewayUrl.parse(url, section.resolve) for url in section.gateways),
        trust=ServerTrust(tuple(section.server_thumbprints), section.ca_bundle, section.server_name),
        client_certificate=_certificate_file(section.client_certificate) if section.client_certificate else None,
        admin_certificates=tuple(_certificate_file(c) for c in section.admin_certificates),
    )


def collector(section: ServiceFabricSource) -> Collector | None:
    """The collector, when a gateway is configured."""
    config = gateway_config(section)
    if config is None:
        return None
    return ServiceFabricCollector(
        config,
        node_health=section.node_health,
        parameter_roles={**DEFAULT_PARAMETER_ROLES, **section.parameter_roles},
        timeout=section.timeout_seconds,
        interval=section.interval_seconds,
    )


def paths(section: ServiceFabricSource) -> Paths:
    """The CA bundle this source reads."""
    return [("sources.servicefabric.ca_bundle", section.ca_bundle)]


def certificate_problems(section: ServiceFabricSource) -> list[str]:
    """Open the client certificates now, so a wrong path or password shows before the run."""
    named = [("sources.servicefabric.client_certificate", section.client_certificate)]
    named += [(f"sources.servicefabric.admin_certificates.{i}", c) for i, c in enumerate(section.admin_certificates)]
    problems = []
    for label, certificate in named:
        if certificate is None or not section.enabled:
            continue
        try:
            load_identity(CertificateFile(certificate.path, certificate.key_path, certificate.password_bytes()))
        except (CollectorError, ConfigError) as err:
            problems.append(f"{label}: {err}")
    return problems


def remediation_options(
    section: ServiceFabricSource, collectors: Mapping[str, Collector], clock: Callable[[], datetime]
) -> dict[str, Any]:
    """The gateway access of the SF remediations: the collector's connector, or a new one."""
    config = gateway_config(section)
    if config is None:
        return {}
    connector = getattr(collectors.get("servicefabric"), "connector", None)
    if connector is None:
        connector = Connector(config, clock)
    return {
        OPTION: GatewayAccess(connector, timeout=section.timeout_seconds, follow_seconds=section.follow_upgrade_seconds)
    }
