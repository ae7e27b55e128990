"""Where sources are registered: one factory per source, from its settings section."""

from __future__ import annotations

from collections.abc import Callable

from collectors.adfs import AdfsCollector
from collectors.agentconfig import LocalAgentConfigCollector
from collectors.base import Collector
from collectors.certfolder import CertFolderCollector
from collectors.clusterconfig import ClusterConfigFileCollector
from collectors.configtemplate import ConfigTemplateCollector
from collectors.servicefabric.api import DEFAULT_PARAMETER_ROLES
from collectors.servicefabric.client import GatewayUrl, ServerTrust
from collectors.servicefabric.collector import ServiceFabricCollector
from collectors.servicefabric.connector import GatewayConfig
from collectors.servicefabric.identity import CertificateFile
from collectors.tls import DEFAULT_PORTS, Endpoint, TlsCollector
from collectors.winrm import WinRMCollector, WinRMOptions
from daemon import sqlsources
from daemon.settings import ConfigError, GatewayCertificateSettings, Settings, SourceSettings

Factory = Callable[[Settings], Collector | None]


def _timing(section: SourceSettings) -> dict[str, float]:
    return {"timeout": section.timeout_seconds, "interval": section.interval_seconds}


def _configtemplate(settings: Settings) -> Collector | None:
    section = settings.sources.configtemplate
    if not section.enabled or section.infrastructure is None:
        return None
    return ConfigTemplateCollector(section.infrastructure, section.infrastructure_old, **_timing(section))


def _clusterconfig(settings: Settings) -> Collector | None:
    section = settings.sources.clusterconfig
    if not section.enabled or section.path is None:
        return None
    return ClusterConfigFileCollector(section.path, **_timing(section))


def _localagent(settings: Settings) -> Collector | None:
    section = settings.sources.localagent
    if not section.enabled or section.path is None:
        return None
    return LocalAgentConfigCollector(section.path, **_timing(section))


def _certfolder(settings: Settings) -> Collector | None:
    section = settings.sources.certfolder
    if not section.enabled or section.path is None:
        return None
    return CertFolderCollector(section.path, section.password_bytes(), section.nodes, **_timing(section))


def _adfs(settings: Settings) -> Collector | None:
    section = settings.sources.adfs
    if not section.enabled or not section.urls:
        return None
    return AdfsCollector(
        section.urls,
        section.ca_bundle,
        resolve=section.resolve,
        require_valid_tls=section.require_valid_tls,
        timeout=section.timeout_seconds,
        interval=section.interval_seconds,
    )


def _tls(settings: Settings) -> Collector | None:
    section = settings.sources.tls
    if not section.enabled or not section.endpoints:
        return None
    endpoints = [
        Endpoint(
            name=e.target(),
            host=e.host,
            port=e.port or DEFAULT_PORTS[e.kind],
            kind=e.kind,
            sni=e.sni,
            addresses=tuple(e.addresses),
            ca_bundle=e.ca_bundle,
            role=e.role,
        )
        for e in section.endpoints
    ]
    return TlsCollector(
        endpoints,
        section.ca_bundle,
        concurrency=section.concurrency,
        timeout=section.timeout_seconds,
        interval=section.interval_seconds,
    )


def _winrm(settings: Settings) -> Collector | None:
    section = settings.sources.winrm
    if not section.enabled or (section.config_template is None and not section.nodes):
        return None
    password = section.password_text()
    if section.transport not in ("kerberos", "negotiate", "https-negotiate") and not (section.username and password):
        raise ConfigError(
            f"sources.winrm: transport {section.transport} needs username and a password "
            "(CERTMON_SOURCES__WINRM__PASSWORD or password_file)"
        )
    options = WinRMOptions(
        transport=section.transport,
        port=section.port,
        username=section.username,
        password=password,
        ca_bundle=str(section.ca_bundle) if section.ca_bundle else None,
        server_thumbprint=section.server_thumbprint,
        operation_timeout=section.operation_timeout_seconds,
        stores=tuple(section.stores),
        allow_ntlm=section.allow_ntlm,
        spn_service=section.spn_service,
    )
    return WinRMCollector(
        options,
        nodes=section.nodes,
        addresses=section.addresses,
        config_template=section.config_template,
        use_template_addresses=section.use_template_addresses,
        concurrency=section.concurrency,
        timeout=section.timeout_seconds,
        interval=section.interval_seconds,
    )


def _certificate_file(section: GatewayCertificateSettings) -> CertificateFile:
    return CertificateFile(section.path, section.key_path, section.password_bytes())


def gateway_config(settings: Settings) -> GatewayConfig | None:
    """The Service Fabric gateway's configuration (for the collector and the SF remediations), or None."""
    section = settings.sources.servicefabric
    if not section.enabled or not section.gateways:
        return None
    return GatewayConfig(
        name=section.target(),
        gateways=tuple(GatewayUrl.parse(url, section.resolve) for url in section.gateways),
        trust=ServerTrust(tuple(section.server_thumbprints), section.ca_bundle, section.server_name),
        client_certificate=_certificate_file(section.client_certificate) if section.client_certificate else None,
        admin_certificates=tuple(_certificate_file(c) for c in section.admin_certificates),
    )


def _servicefabric(settings: Settings) -> Collector | None:
    config = gateway_config(settings)
    if config is None:
        return None
    section = settings.sources.servicefabric
    return ServiceFabricCollector(
        config,
        node_health=section.node_health,
        parameter_roles={**DEFAULT_PARAMETER_ROLES, **section.parameter_roles},
        timeout=section.timeout_seconds,
        interval=section.interval_seconds,
    )


SOURCES: dict[str, Factory] = {
    "configtemplate": _configtemplate,
    "clusterconfig": _clusterconfig,
    "localagent": _localagent,
    "certfolder": _certfolder,
    "adfs": _adfs,
    "tls": _tls,
    "winrm": _winrm,
    "servicefabric": _servicefabric,
    "sql": sqlsources.sql,
    "agentshare": sqlsources.agentshare,
    "credentials": sqlsources.credentials,
}


def build_collectors(settings: Settings) -> list[Collector]:
    """A collector for every configured and enabled source."""
    collectors = []
    for factory in SOURCES.values():
        collector = factory(settings)
        if collector is not None:
            collectors.append(collector)
    return collectors


def jitter(settings: Settings, name: str) -> float:
    """Configured jitter of a source."""
    section = getattr(settings.sources, name, None)
    return float(getattr(section, "jitter_seconds", 0.0))
