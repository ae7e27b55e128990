"""Service Fabric standalone cluster configuration (ClusterConfig.json), thumbprint and common-name forms.

Keys are read case-insensitively: a hand-written ClusterConfig.json is camelCase (`name`,
`clusterConfigurationVersion`, `properties.security`), but what the cluster returns from
GetClusterConfiguration, and what `Get-ServiceFabricClusterConfiguration > file` writes (UTF-16),
is PascalCase (`Name`, `ClusterConfigurationVersion`, `Properties.Security`): the Upgrade
Orchestration Service serialises its model classes with Newtonsoft's default settings. A
configuration in which no certificate at all can be found is an error, never an empty success.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from collectors.base import Deadline, FileCollector
from collectors.certificate import normalize_thumbprint
from collectors.errors import CollectorError, Reason, ThumbprintError
from collectors.files import parse_json, read_bytes
from collectors.model import CertReference, Generation, MetricSpec, Observation

# CertificateInformation keys of the thumbprint form, and the certificate label certmon uses.
CERT_KINDS = (
    ("ClusterCertificate", "cluster"),
    ("ServerCertificate", "server"),
    ("ReverseProxyCertificate", "reverse_proxy"),
)
SF_ROLE = "ServiceFabric"
SF_CLIENT_ROLE = "ServiceFabricClient"


@dataclass(frozen=True, slots=True)
class SfCertificate:
    """A cluster, server or reverse-proxy certificate declared by thumbprint."""

    kind: str
    thumbprint: str
    thumbprint_secondary: str
    store: str


@dataclass(frozen=True, slots=True)
class SfClient:
    """A client certificate thumbprint and whether it is admin."""

    thumbprint: str
    is_admin: bool


@dataclass(frozen=True, slots=True)
class SfCommonName:
    """A certificate declared by common name, with its issuer pinning."""

    kind: str
    common_name: str
    issuer_thumbprints: tuple[str, ...]
    is_admin: bool


@dataclass(frozen=True, slots=True)
class SfIssuerStore:
    """An issuer-store entry of the common-name form."""

    kind: str
    issuer_common_name: str
    store_names: str


@dataclass(frozen=True, slots=True)
class SfNode:
    """A node of the cluster configuration."""

    name: str
    ip_address: str
    node_type: str
    fault_domain: str
    upgrade_domain: str


@dataclass(frozen=True, slots=True)
class ClusterConfig:
    """The certificate-relevant part of a standalone cluster configuration."""

    name: str
    version: str
    api_version: str
    nodes: tuple[SfNode, ...]
    certificates: tuple[SfCertificate, ...]
    clients: tuple[SfClient, ...]
    common_names: tuple[SfCommonName, ...]
    issuer_stores: tuple[SfIssuerStore, ...]

    @property
    def by_common_name(self) -> bool:
        """True when the cluster or server certificate is declared by common name."""
        return any(cn.kind in ("cluster", "server") for cn in self.common_names)

    def certificate(self, kind: str) -> SfCertificate | None:
        """The thumbprint-form certificate of a kind (cluster, server, reverse_proxy)."""
        return next((c for c in self.certificates if c.kind == kind), None)

    def secondaries(self) -> list[SfCertificate]:
        """Certificates that still carry a ThumbprintSecondary."""
        return [c for c in self.certificates if c.thumbprint_secondary]


def member(obj: dict[str, Any], key: str) -> Any:
    """obj[key], matching the key case-insensitively when the exact spelling is absent."""
    if key in obj:
        return obj[key]
    wanted = key.lower()
    return next((value for k, value in obj.items() if isinstance(k, str) and k.lower() == wanted), None)


def member_key(obj: dict[str, Any], key: str) -> str:
    """The spelling `obj` uses for `key` (case-insensitively), or `key` itself when it is absent."""
    if key in obj:
        return key
    wanted = key.lower()
    return next((k for k in obj if isinstance(k, str) and k.lower() == wanted), key)


def _thumbprint(value: Any, where: str, name: str) -> str:
    if value is None or value == "":
        return ""
    if not isinstance(value, str):
        raise CollectorError(name, Reason.PARSE_ERROR, f"{where}: expected a string")
    try:
        return normalize_thumbprint(value)
    except ThumbprintError as err:
        raise CollectorError(name, Reason.PARSE_ERROR, f"{where}: {err}") from err


def _object(value: Any, where: str, name: str) -> dict[str, Any]:
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise CollectorError(name, Reason.PARSE_ERROR, f"{where}: expected an object")
    return value


def _array(value: Any, where: str, name: str) -> list[Any]:
    if value is None:
        return []
    if not isinstance(value, list):
        raise CollectorError(name, Reason.PARSE_ERROR, f"{where}: expected an array")
    return value


def _bool(value: Any) -> bool:
    return value is True or (isinstance(value, str) and value.strip().lower() == "true")


def parse_cluster_config(document: Any, name: str) -> ClusterConfig:
    """Interpret a parsed ClusterConfig.json document; raises CollectorError naming the field."""
    if not isinstance(document, dict) or not document:
        raise CollectorError(name, Reason.PARSE_ERROR, "document: expected a cluster configuration object")
    root = document
    base = "properties.security.CertificateInformation"
    properties = _object(member(root, "properties"), "properties", name)
    security = _object(member(properties, "security"), "properties.security", name)
    info = _object(member(security, "CertificateInformation"), base, name)
    certificates = []
    for key, kind in CERT_KINDS:
        entry = _object(member(info, key), f"{base}.{key}", name)
        if entry:
            certificates.append(
                SfCertificate(
                    kind=kind,
                    thumbprint=_thumbprint(member(entry, "Thumbprint"), f"{base}.{key}.Thumbprint", name),
                    thumbprint_secondary=_thumbprint(
                        member(entry, "ThumbprintSecondary"), f"{base}.{key}.ThumbprintSecondary", name
                    ),
                    store=str(member(entry, "X509StoreName") or "My"),
                )
            )
    clients = []
    client_key = "ClientCertificateThumbprints"
    for index, entry in enumerate(_array(member(info, client_key), f"{base}.{client_key}", name)):
        where = f"{base}.{client_key}[{index}]"
        item = _object(entry, where, name)
        clients.append(
            SfClient(
                thumbprint=_thumbprint(member(item, "CertificateThumbprint"), f"{where}.CertificateThumbprint", name),
                is_admin=_bool(member(item, "IsAdmin")),
            )
        )
    common_names = []
    issuer_stores = []
    for key, kind in (*CERT_KINDS, ("ClientCertificate", "client")):
        cn_key = f"{key}CommonNames"
        value = member(info, cn_key)
        # Server-side forms wrap the list in {"CommonNames": [...]}; the client form is a list.
        entries = member(value, "CommonNames") if isinstance(value, dict) else value
        for index, entry in enumerate(_array(entries, f"{base}.{cn_key}", name)):
            item = _object(entry, f"{base}.{cn_key}[{index}]", name)
            issuers = str(member(item, "CertificateIssuerThumbprint") or "")
            common_names.append(
                SfCommonName(
                    kind=kind,
                    common_name=str(member(item, "CertificateCommonName") or ""),
                    issuer_thumbprints=tuple(
                        _thumbprint(t, f"{base}.{cn_key}[{index}].CertificateIssuerThumbprint", name)
                        for t in issuers.split(",")
                        if t.strip()
                    ),
                    is_admin=_bool(member(item, "IsAdmin")),
                )
            )
        store_key = f"{key}IssuerStores"
        for index, entry in enumerate(_array(member(info, store_key), f"{base}.{store_key}", name)):
            item = _object(entry, f"{base}.{store_key}[{index}]", name)
            issuer_stores.append(
                SfIssuerStore(
                    kind, str(member(item, "IssuerCommonName") or ""), str(member(item, "X509StoreNames") or "")
                )
            )
    nodes = tuple(
        SfNode(
            name=str(member(node, "nodeName") or ""),
            ip_address=str(member(node, "iPAddress") or ""),
            node_type=str(member(node, "nodeTypeRef") or ""),
            fault_domain=str(member(node, "faultDomain") or ""),
            upgrade_domain=str(member(node, "upgradeDomain") or ""),
        )
        for index, node in enumerate(_array(member(root, "nodes"), "nodes", name))
        if _object(node, f"nodes[{index}]", name)
    )
    if not certificates and not clients and not common_names:
        raise CollectorError(
            name,
            Reason.PARSE_ERROR,
            f"no certificate found under {base} (keys read case-insensitively): the configuration declares no "
            "cluster, server, reverse-proxy or client certificate by thumbprint or common name",
        )
    return ClusterConfig(
        name=str(member(root, "name") or ""),
        version=str(member(root, "clusterConfigurationVersion") or ""),
        api_version=str(member(root, "apiVersion") or ""),
        nodes=nodes,
        certificates=tuple(certificates),
        clients=tuple(clients),
        common_names=tuple(common_names),
        issuer_stores=tuple(issuer_stores),
    )


def cluster_references(config: ClusterConfig, source: str, file_label: str) -> tuple[CertReference, ...]:
    """Thumbprints the cluster configuration names: primaries new, secondaries old."""
    refs = []
    for cert in config.certificates:
        key = next(k for k, kind in CERT_KINDS if kind == cert.kind)
        if cert.thumbprint:
            refs.append(
                CertReference(SF_ROLE, cert.thumbprint, Generation.NEW, f"{file_label}:{key}.Thumbprint", source)
            )
        if cert.thumbprint_secondary:
            refs.append(
                CertReference(
                    SF_ROLE,
                    cert.thumbprint_secondary,
                    Generation.OLD,
                    f"{file_label}:{key}.ThumbprintSecondary",
                    source,
                )
            )
    for client in config.clients:
        if client.thumbprint:
            slot = "admin" if client.is_admin else "read-only"
            refs.append(
                CertReference(
                    SF_CLIENT_ROLE,
                    client.thumbprint,
                    Generation.NEW,
                    f"{file_label}:ClientCertificateThumbprints ({slot})",
                    source,
                )
            )
    return tuple(refs)


def load_cluster_config(path: str | Path) -> ClusterConfig:
    """Read and interpret a ClusterConfig.json file."""
    return parse_cluster_config(parse_json(read_bytes(path), str(path)), str(path))


def cluster_config_metrics(source: str, config_of: Callable[[Any], ClusterConfig | None]) -> tuple[MetricSpec, ...]:
    """The configuration-version and thumbprint metrics of a source whose facts hold a ClusterConfig.

    Both the file (`clusterconfig`) and the gateway (`servicefabric`) export them; the `source`
    label keeps the staged file and the running configuration apart.
    """

    def versions(facts: Any, target: str) -> list[tuple[tuple[str, ...], float]]:
        config = config_of(facts)
        return [] if config is None else [((source, config.name, config.version, config.api_version), 1.0)]

    def thumbprints(facts: Any, target: str) -> list[tuple[tuple[str, ...], float]]:
        config = config_of(facts)
        out: list[tuple[tuple[str, ...], float]] = []
        if config is None:
            return out
        for cert in config.certificates:
            for slot, value in (("primary", cert.thumbprint), ("secondary", cert.thumbprint_secondary)):
                if value:
                    out.append(((source, cert.kind, slot, value, ""), 1.0))
        for client in config.clients:
            out.append(((source, "client", "primary", client.thumbprint, str(client.is_admin).lower()), 1.0))
        return out

    return (
        MetricSpec(
            "certmon_sf_config_version_info",
            "Service Fabric cluster configuration version (source clusterconfig: the file; servicefabric: running).",
            ("source", "cluster", "config_version", "api_version"),
            versions,
        ),
        MetricSpec(
            "certmon_sf_cert_thumbprint_info",
            "Certificate thumbprints declared in the Service Fabric cluster configuration, by source.",
            ("source", "certificate", "slot", "thumbprint", "is_admin"),
            thumbprints,
        ),
    )


CLUSTER_CONFIG_METRICS = cluster_config_metrics("clusterconfig", lambda facts: facts)


class ClusterConfigFileCollector(FileCollector):
    """A ClusterConfig.json file, where no gateway is configured or as the staged copy."""

    name = "clusterconfig"
    metrics = CLUSTER_CONFIG_METRICS

    def collect(self, target: str, deadline: Deadline) -> Observation:
        """Read the configuration."""
        config = load_cluster_config(self.path)
        return Observation(references=cluster_references(config, self.name, self.path.name), facts=config)
