"""ConfigTemplate.xml from the Infrastructure scripts: certificates, node types, SQL VMs, shares."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from collectors.base import Collector, Deadline
from collectors.certificate import normalize_thumbprint
from collectors.errors import CollectorError, Reason, ThumbprintError
from collectors.files import local_name, parse_xml, read_bytes
from collectors.model import CertReference, Generation, MetricSpec, Observation

TEMPLATE_FILE = "ConfigTemplate.xml"


@dataclass(frozen=True, slots=True)
class TemplateCertificate:
    """One Certificates/Certificate element."""

    role: str
    name: str
    file_name: str
    thumbprint: str
    dns_names: tuple[str, ...]
    subject: str
    provider: str
    key_usage: str
    enhanced_key_usage: str
    certificate_type: str
    protect_to: str
    exportable: bool
    generate_self_signed: bool
    generate_adcs: bool
    disabled: bool
    manual_properties: bool


@dataclass(frozen=True, slots=True)
class TemplateVM:
    """A VM of a Service Fabric node type."""

    name: str
    ip_address: str
    fault_domain: str
    update_domain: str
    node_type: str
    purpose: str


@dataclass(frozen=True, slots=True)
class TemplateNodeType:
    """A ServiceFabricCluster/NodeType element."""

    name: str
    primary: bool
    name_prefix: str
    purpose: str
    vms: tuple[TemplateVM, ...]
    # disabled="true": Microsoft's template ships node types that are not deployed (AOSNodeType when
    # batch/interactive AOS types are used, and the reverse), their VMs placeholders.
    disabled: bool = False


@dataclass(frozen=True, slots=True)
class ServiceAccount:
    """An `ADServiceAccounts/ADServiceAccount` (gMSA or DomainUser) the deployment's services run as."""

    ref_name: str
    name: str
    kind: str
    disabled: bool = False


@dataclass(frozen=True, slots=True)
class ConfigTemplate:
    """Everything certmon reads from one ConfigTemplate.xml."""

    path: str
    generation: Generation
    schema_version: str
    certificates: tuple[TemplateCertificate, ...]
    node_types: tuple[TemplateNodeType, ...]
    sql_listener: str
    sql_vms: tuple[str, ...]
    file_shares: tuple[tuple[str, str], ...]
    # ADServiceAccounts/DomainName: the NetBIOS domain name (Microsoft: "lab\\svc-LocalAgent$").
    domain_name: str = ""
    service_accounts: tuple[ServiceAccount, ...] = ()

    def service_account(self, ref_name: str) -> str:
        """`DOMAIN\\name` of the enabled service account with this refName (case-insensitive), or ''."""
        for account in self.service_accounts:
            if account.ref_name.lower() == ref_name.lower() and account.name and not account.disabled:
                return f"{self.domain_name}\\{account.name}" if self.domain_name else account.name
        return ""

    def vms(self) -> Iterator[TemplateVM]:
        """Every VM of every deployed node type (a disabled="true" node type's VMs are placeholders)."""
        for node_type in self.node_types:
            if not node_type.disabled:
                yield from node_type.vms

    def active_certificates(self) -> Iterator[TemplateCertificate]:
        """Certificates that are not disabled."""
        return (c for c in self.certificates if not c.disabled)

    def thumbprints(self, role: str) -> list[str]:
        """Non-empty thumbprints configured for a role."""
        return [c.thumbprint for c in self.active_certificates() if c.role == role and c.thumbprint]

    def share(self, ref_name: str) -> str:
        """Path of the file share with this refName, or ''."""
        return dict(self.file_shares).get(ref_name, "")


def _flag(element: Any, name: str) -> bool:
    return str(element.get(name, "")).strip().lower() == "true"


def _children(element: Any | None, name: str) -> Iterator[Any]:
    if element is None:
        return
    for child in element:
        if local_name(child.tag) == name:
            yield child


def _child(element: Any | None, name: str) -> Any | None:
    return next(_children(element, name), None)


def _text(element: Any | None, name: str) -> str:
    child = _child(element, name)
    return "" if child is None or child.text is None else child.text.strip()


def parse_config_template(data: bytes, path: str, generation: Generation) -> ConfigTemplate:
    """Parse ConfigTemplate.xml bytes; raises CollectorError naming the file and the element."""
    root = parse_xml(data, path)
    if local_name(root.tag) != "Config":
        raise CollectorError(path, Reason.PARSE_ERROR, f"root element is <{local_name(root.tag)}>, expected <Config>")
    certificates = []
    for index, element in enumerate(_children(_child(root, "Certificates"), "Certificate"), 1):
        role = element.get("type", "").strip()
        name = _text(element, "Name")
        raw = _text(element, "Thumbprint")
        try:
            thumbprint = normalize_thumbprint(raw) if raw else ""
        except ThumbprintError as err:
            where = f"Certificates/Certificate[{index}] ({role or 'no type'} {name!r})/Thumbprint"
            raise CollectorError(path, Reason.PARSE_ERROR, f"{where}: {err}") from err
        certificates.append(
            TemplateCertificate(
                role=role,
                name=name,
                file_name=_text(element, "FileName"),
                thumbprint=thumbprint,
                dns_names=tuple(d.strip() for d in _text(element, "DNSName").split(";") if d.strip()),
                subject=_text(element, "Subject"),
                provider=_text(element, "Provider"),
                key_usage=_text(element, "KeyUsage"),
                enhanced_key_usage=_text(element, "EnhancedKeyUsage"),
                certificate_type=_text(element, "CertificateType"),
                protect_to=_text(element, "ProtectTo"),
                exportable=_flag(element, "exportable"),
                generate_self_signed=_flag(element, "generateSelfSignedCert"),
                generate_adcs=_flag(element, "generateADCSCert"),
                disabled=_flag(element, "disabled"),
                manual_properties=_flag(element, "manualProperties"),
            )
        )
    node_types = []
    cluster = _child(root, "ServiceFabricCluster")
    for element in _children(cluster, "NodeType"):
        type_name = element.get("name", "")
        purpose = element.get("purpose", "")
        vms = tuple(
            TemplateVM(
                name=vm.get("name", ""),
                ip_address=vm.get("ipAddress", ""),
                fault_domain=vm.get("faultDomain", ""),
                update_domain=vm.get("updateDomain", ""),
                node_type=type_name,
                purpose=purpose,
            )
            for vm in _children(_child(element, "VMList"), "VM")
            if vm.get("name")
        )
        node_types.append(
            TemplateNodeType(
                name=type_name,
                primary=_flag(element, "primary"),
                name_prefix=element.get("namePrefix", ""),
                purpose=purpose,
                vms=vms,
                disabled=_flag(element, "disabled"),
            )
        )
    sql = _child(root, "SQLCluster")
    sql_vms = tuple(vm.get("name", "") for vm in _children(_child(sql, "SQLVMList"), "SQLVM") if vm.get("name"))
    shares = tuple(
        (share.get("refName", ""), _text(share, "Path")) for share in _children(_child(root, "FileShares"), "FileShare")
    )
    accounts = _child(root, "ADServiceAccounts")
    service_accounts = tuple(
        ServiceAccount(a.get("refName", "").strip(), a.get("name", "").strip(), a.get("type", ""), _flag(a, "disabled"))
        for a in _children(accounts, "ADServiceAccount")
    )
    return ConfigTemplate(
        path=path,
        generation=generation,
        schema_version=_text(_child(root, "Schema"), "Version"),
        certificates=tuple(certificates),
        node_types=tuple(node_types),
        sql_listener=_text(sql, "ListenerName"),
        sql_vms=sql_vms,
        file_shares=shares,
        domain_name=_text(accounts, "DomainName"),
        service_accounts=service_accounts,
    )


def template_file(location: str | Path) -> Path:
    """Accept either an Infrastructure folder or the ConfigTemplate.xml path itself."""
    path = Path(location)
    return path / TEMPLATE_FILE if path.is_dir() else path


def load_config_template(location: str | Path, generation: Generation) -> ConfigTemplate:
    """Read and parse a ConfigTemplate.xml (or the Infrastructure folder holding it)."""
    path = template_file(location)
    return parse_config_template(read_bytes(path), str(path), generation)


def template_references(template: ConfigTemplate, source: str) -> tuple[CertReference, ...]:
    """The thumbprints a template names, one reference per active certificate."""
    folder = "InfrastructureOld" if template.generation is Generation.OLD else "Infrastructure"
    return tuple(
        CertReference(
            role=cert.role,
            thumbprint=cert.thumbprint,
            generation=template.generation,
            reference=f"{folder}/{TEMPLATE_FILE}:{cert.name or cert.role}",
            source=source,
        )
        for cert in template.active_certificates()
        if cert.role
    )


def _schema_samples(facts: Any, target: str) -> list[tuple[tuple[str, ...], float]]:
    return [((str(facts.generation), facts.schema_version), 1.0)]


class ConfigTemplateCollector(Collector):
    """The Infrastructure / InfrastructureOld pair of ConfigTemplate.xml files."""

    name = "configtemplate"
    metrics = (
        MetricSpec(
            "certmon_configtemplate_schema_info",
            "Schema version of a ConfigTemplate.xml (generation new = Infrastructure).",
            ("generation", "version"),
            _schema_samples,
        ),
    )

    def __init__(
        self,
        infrastructure: Path | None,
        infrastructure_old: Path | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.locations: dict[str, tuple[Path, Generation]] = {}
        if infrastructure is not None:
            self.locations["Infrastructure"] = (infrastructure, Generation.NEW)
        if infrastructure_old is not None:
            self.locations["InfrastructureOld"] = (infrastructure_old, Generation.OLD)

    def targets(self) -> Sequence[str]:
        """Infrastructure and, when configured, InfrastructureOld."""
        return tuple(self.locations)

    def collect(self, target: str, deadline: Deadline) -> Observation:
        """Parse one of the pair."""
        location, generation = self.locations[target]
        template = load_config_template(location, generation)
        return Observation(references=template_references(template, self.name), facts=template)
