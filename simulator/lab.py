"""The lab: a generated D365 F&O on-premises environment, mid-rotation, on disk.

Certificates for every role in an old and a new generation, the ConfigTemplate pair,
ClusterConfig.json with the new thumbprints staged, localagent-config.json, and a folder of
exported certificates per node. The demo runs on it; the tests build it in a temporary folder.
"""

from __future__ import annotations

import json
import secrets
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from xml.etree import ElementTree as ET

import yaml
from cryptography.x509.oid import NameOID

from simulator.pki import Issued, days, make_certificate, pfx_bytes, rsa_key

DOMAIN = "contoso.lab"
# The rotation as the demo walks it (simulator/stages.py); removed-early is the one detour, from re-encrypting.
STAGES = ("before", "staged", "upgraded", "re-encrypting", "removed-early", "done")
#: the stages `build_lab` writes directly; later ones are reached by operating on the running lab
BUILT_STAGES = ("before", "staged")
# The account certmon uses on the (simulated) Windows nodes.
WINRM_DOMAIN, WINRM_USER = "CONTOSO", "svc-certmon"


@dataclass(frozen=True)
class RoleSpec:
    """A certificate role of the template and the node purposes that need it installed."""

    role: str
    name: str
    subject: str
    purposes: tuple[str, ...]
    ca_issued: bool
    old_days_left: float
    new_days_left: float = 730.0
    dns: tuple[str, ...] = ()


ROLES: tuple[RoleSpec, ...] = (
    RoleSpec(
        "ServiceFabric",
        "Star",
        f"*.{DOMAIN}",
        ("AOS", "Orchestrator", "ReportServer", "MR"),
        True,
        12,
        dns=(f"*.{DOMAIN}", f"sf.d365ffo.onprem.{DOMAIN}", f"ax.d365ffo.onprem.{DOMAIN}"),
    ),
    RoleSpec(
        "ServiceFabricClient", "Client", f"client.{DOMAIN}", ("AOS", "Orchestrator", "ReportServer", "MR"), True, 40
    ),
    RoleSpec(
        "ServiceFabricEncryption",
        "axdataencipherment",
        "axdataencipherment.d365ffo.onprem",
        ("AOS", "Orchestrator", "ReportServer", "MR"),
        False,
        75,
    ),
    RoleSpec("SessionAuthentication", "SessionAuthentication", f"SessionAuthentication.{DOMAIN}", ("AOS",), False, 35),
    RoleSpec("DataEncryption", "DataEncryption", "DataEncryption.d365ffo.onprem", ("AOS",), False, 25),
    RoleSpec("DataSigning", "DataSigning", "DataSigning.d365ffo.onprem", ("AOS",), False, 60),
    RoleSpec("FinancialReporting", "FinancialReporting", f"FinancialReporting.{DOMAIN}", ("AOS", "MR"), True, 50),
    RoleSpec("ReportingService", "ReportingService", f"ReportingService.{DOMAIN}", ("AOS", "ReportServer"), True, 50),
    RoleSpec("Orchestrator", "LocalAgent", f"OnPremLocalAgent.{DOMAIN}", ("Orchestrator",), True, 45),
    RoleSpec("SSRSHTTPS", "SSRSHTTPS", f"bi1.{DOMAIN}", ("ReportServer",), True, 55, dns=(f"bi1.{DOMAIN}",)),
    RoleSpec("SQLCluster", "SQL1", f"sql1.{DOMAIN}", ("SQL",), True, 90, dns=(f"sql1.{DOMAIN}", "sql1")),
    RoleSpec("RSAT", "RSAT", f"rsat.{DOMAIN}", ("AOS",), False, 100, new_days_left=25),
)


@dataclass(frozen=True)
class LabNode:
    """A VM of the lab."""

    name: str
    ip_address: str
    node_type: str
    purpose: str


NODE_TYPES: tuple[tuple[str, str, str, bool, tuple[str, ...]], ...] = (
    ("OrchestratorNodeType", "Orchestrator", "ORCH", True, ("ORCH1", "ORCH2", "ORCH3")),
    ("AOSNodeType", "AOS", "AOS", False, ("AOS1", "AOS2", "AOS3")),
    ("ReportServerType", "ReportServer", "BI", False, ("BI1",)),
    ("MRType", "MR", "MR", False, ("MR1",)),
)
SQL_NODES = ("SQL1",)


@dataclass
class LabCert:
    """One certificate of the lab: role, generation, material, and where it is installed."""

    spec: RoleSpec
    generation: str
    issued: Issued
    nodes: tuple[str, ...]

    @property
    def thumbprint(self) -> str:
        """Windows thumbprint."""
        return self.issued.thumbprint

    @property
    def file_stem(self) -> str:
        """File name used in node folders."""
        return f"{self.spec.role}-{self.generation}"


@dataclass
class Lab:
    """A generated environment on disk."""

    root: Path
    environment: str
    now: datetime
    stage: str
    password: str
    ca: Issued
    nodes: list[LabNode] = field(default_factory=list)
    certs: dict[tuple[str, str], LabCert] = field(default_factory=dict)
    #: AD FS and TLS endpoint certificates by name (SERVICE_CERTS); not template roles
    service_certs: dict[str, Issued] = field(default_factory=dict)
    winrm_password: str = ""

    @property
    def infrastructure(self) -> Path:
        """The Infrastructure folder (new scripts and ConfigTemplate)."""
        return self.root / "Infrastructure"

    @property
    def infrastructure_old(self) -> Path:
        """The InfrastructureOld folder."""
        return self.root / "InfrastructureOld"

    @property
    def cluster_config(self) -> Path:
        """ClusterConfig.json."""
        return self.root / "ClusterConfig.json"

    @property
    def localagent_config(self) -> Path:
        """localagent-config.json."""
        return self.root / "localagent-config.json"

    @property
    def certs_dir(self) -> Path:
        """One folder per node of exported certificates."""
        return self.root / "certs"

    @property
    def password_file(self) -> Path:
        """The PFX password."""
        return self.root / "secrets" / "pfx-password.txt"

    @property
    def winrm_password_file(self) -> Path:
        """The password of the WinRM account, for certmon."""
        return self.root / "secrets" / "winrm-password.txt"

    @property
    def ntlm_user_file(self) -> Path:
        """The nodes' accounts (`DOMAIN:user:password` lines), for the simulated nodes."""
        return self.root / "secrets" / "ntlm-users.txt"

    @property
    def winrm_username(self) -> str:
        """DOMAIN\\user of the WinRM account."""
        return f"{WINRM_DOMAIN}\\{WINRM_USER}"

    @property
    def config_file(self) -> Path:
        """certmon.yaml for this lab."""
        return self.root / "certmon.yaml"

    @property
    def ca_bundle(self) -> Path:
        """PEM bundle holding the lab root CA (what TLS and AD FS validation trust)."""
        return self.root / "tls" / "lab-ca.pem"

    @property
    def data_dir(self) -> Path:
        """The daemon's data directory."""
        return self.root / "data"

    @property
    def agent_share(self) -> Path:
        """The agent file share (\\\\DC1\\D365FFOStorage\\agent in the templates)."""
        return self.root / "agent-share"

    @property
    def share_config(self) -> Path:
        """The deployment's config.json on the agent share (its path is in OrchestratorData)."""
        from simulator.agentshare import DEPLOYMENT_FOLDER

        return self.agent_share.joinpath(*DEPLOYMENT_FOLDER, "config.json")

    @property
    def credentials_json(self) -> Path:
        """Credentials.json on the agent share."""
        return self.agent_share / "Credentials" / "Credentials.json"

    @property
    def axdb_file(self) -> Path:
        """The business database (SQLite stand-in for AXDB)."""
        return self.root / "sql" / "AXDB.sqlite"

    @property
    def orchestrator_file(self) -> Path:
        """OrchestratorData (SQLite)."""
        return self.root / "sql" / "OrchestratorData.sqlite"

    def cert(self, role: str, generation: str = "new") -> LabCert:
        """One certificate of the lab."""
        return self.certs[(role, generation)]

    def nodes_for(self, purposes: tuple[str, ...]) -> tuple[str, ...]:
        """Names of the VMs whose purpose is in purposes."""
        return tuple(n.name for n in self.nodes if n.purpose in purposes)

    def node(self, name: str) -> LabNode:
        """A node by name."""
        return next(n for n in self.nodes if n.name == name)

    def current(self, role: str) -> LabCert:
        """The certificate the environment's configuration names as current for a role."""
        return self.cert(role, "old" if self.stage == "before" else "new")

    def reached(self, stage: str) -> bool:
        """Whether the rotation has got as far as `stage` (removed-early counts as re-encrypting)."""
        return STAGES.index(self.stage) >= STAGES.index(stage)


ADFS_HOST = f"adfs.{DOMAIN}"
ROGUE_CA = "Untrusted Test Root CA"

# name, subject CN, DNS names, issuer ("lab", "self" or "rogue"), notBefore and notAfter in days from now.
# Token-signing and decrypting certificates come in two generations, as AD FS auto-rollover leaves them.
SERVICE_CERTS: tuple[tuple[str, str, tuple[str, ...], str, float, float], ...] = (
    ("ADFSTokenSigning-old", f"ADFS Signing - {ADFS_HOST}", (), "self", -350, 15),
    ("ADFSTokenSigning-new", f"ADFS Signing - {ADFS_HOST}", (), "self", -5, 360),
    ("ADFSTokenDecrypting-old", f"ADFS Encryption - {ADFS_HOST}", (), "self", -350, 15),
    ("ADFSTokenDecrypting-new", f"ADFS Encryption - {ADFS_HOST}", (), "self", -5, 360),
    ("ADFSSSL", ADFS_HOST, (ADFS_HOST, f"enterpriseregistration.{DOMAIN}"), "lab", -300, 65),
    ("tls-expired", f"expired.{DOMAIN}", (f"expired.{DOMAIN}",), "lab", -400, -3),
    ("tls-untrusted", f"untrusted.{DOMAIN}", (f"untrusted.{DOMAIN}",), "rogue", -30, 335),
    ("tls-wrongname", f"other.{DOMAIN}", (f"other.{DOMAIN}",), "lab", -30, 335),
    # certmon's read-only client of the Service Fabric gateway, declared by common name in ClusterConfig.json
    ("SFMonitorClient", f"certmon.{DOMAIN}", (), "lab", -30, 700),
)


def _issue_service_certs(lab: Lab) -> None:
    rogue = make_certificate(
        ROGUE_CA, not_before=days(lab.now, -100), not_after=days(lab.now, 900), key=rsa_key("rogue-ca"), is_ca=True
    )
    issuers = {"lab": lab.ca, "self": None, "rogue": rogue}
    lab.service_certs["rogue-ca"] = rogue
    for name, subject, dns, issuer, start, end in SERVICE_CERTS:
        lab.service_certs[name] = make_certificate(
            subject,
            not_before=days(lab.now, start),
            not_after=days(lab.now, end),
            key=rsa_key(name),
            issuer=issuers[issuer],
            dns_names=dns,
            extra_subject=((NameOID.ORGANIZATION_NAME, "Contoso Lab"),),
        )
    lab.ca_bundle.parent.mkdir(exist_ok=True)
    lab.ca_bundle.write_bytes(lab.ca.pem)


def _nodes() -> list[LabNode]:
    nodes = []
    for index, (type_name, purpose, _prefix, _primary, names) in enumerate(NODE_TYPES):
        for offset, name in enumerate(names):
            nodes.append(LabNode(name, f"10.0.{index}.{11 + offset}", type_name, purpose))
    nodes += [LabNode(name, f"10.0.9.{11 + i}", "", "SQL") for i, name in enumerate(SQL_NODES)]
    return nodes


def _issue(spec: RoleSpec, generation: str, ca: Issued, now: datetime) -> Issued:
    left = spec.old_days_left if generation == "old" else spec.new_days_left
    lifetime = 730.0
    return make_certificate(
        spec.subject,
        not_before=days(now, min(left - lifetime, -1.0)),
        not_after=days(now, left),
        key=rsa_key(f"{spec.role}-{generation}"),
        issuer=ca if spec.ca_issued else None,
        dns_names=spec.dns or (spec.subject,),
        extra_subject=((NameOID.ORGANIZATION_NAME, "Contoso Lab"),),
    )


def build_lab(
    root: Path,
    *,
    environment: str = "demo",
    now: datetime | None = None,
    stage: str = "staged",
    port: int = 9877,
    cng_roles: tuple[str, ...] = (),
) -> Lab:
    """Generate the lab under root and return its description; cng_roles keep their keys in a CNG provider."""
    if stage not in BUILT_STAGES:
        raise ValueError(f"build_lab writes the stages {', '.join(BUILT_STAGES)}, not {stage!r}")
    now = (now or datetime.now(UTC)).replace(microsecond=0)
    root.mkdir(parents=True, exist_ok=True)
    ca = make_certificate(
        "Contoso Lab Root CA",
        not_before=days(now, -1500),
        not_after=days(now, 2000),
        key=rsa_key("lab-root-ca"),
        is_ca=True,
    )
    lab = Lab(
        root, environment, now, stage, secrets.token_urlsafe(18), ca, _nodes(), winrm_password=secrets.token_urlsafe(18)
    )
    for spec in ROLES:
        nodes = lab.nodes_for(spec.purposes)
        for generation in ("old", "new"):
            lab.certs[(spec.role, generation)] = LabCert(spec, generation, _issue(spec, generation, ca, now), nodes)
    write_templates(lab)
    _issue_service_certs(lab)
    _write_cluster_config(lab)
    _write_localagent(lab)
    _write_node_folders(lab)
    _write_node_facts(lab, cng_roles)
    _write_data(lab)
    _write_config(lab, port)
    return lab


def _write_data(lab: Lab) -> None:
    from simulator import labdata

    labdata.write_agent_share(lab)
    labdata.write_databases(lab)
    labdata.write_node_facts(lab)


def _template(lab: Lab, generation: str, schema: str) -> bytes:
    config = ET.Element("Config")
    ET.SubElement(ET.SubElement(config, "Schema"), "Version").text = schema
    certificates = ET.SubElement(config, "Certificates")
    for spec in ROLES:
        cert = lab.cert(spec.role, generation)
        element = ET.SubElement(
            certificates,
            "Certificate",
            {
                "type": spec.role,
                "exportable": "true",
                "generateSelfSignedCert": str(not spec.ca_issued).lower(),
                "generateADCSCert": "false",
                "disabled": "false",
                "manualProperties": "false",
            },
        )
        for tag, text in (
            ("Name", spec.name),
            ("FileName", spec.name.lower()),
            ("DNSName", ";".join(spec.dns or (spec.subject,))),
            ("Subject", spec.subject),
            ("Provider", "Microsoft Enhanced RSA and AES Cryptographic Provider"),
            ("KeyUsage", ""),
            ("EnhancedKeyUsage", ""),
            ("CertificateType", ""),
            ("Thumbprint", cert.thumbprint),
            ("ProtectTo", "CONTOSO\\D365 Admins"),
        ):
            ET.SubElement(element, tag).text = text
    cluster = ET.SubElement(config, "ServiceFabricCluster")
    ET.SubElement(cluster, "ClusterName").text = "D365FOCluster"
    for type_name, purpose, prefix, primary, names in NODE_TYPES:
        node_type = ET.SubElement(
            cluster,
            "NodeType",
            {"name": type_name, "primary": str(primary).lower(), "namePrefix": prefix, "purpose": purpose},
        )
        vm_list = ET.SubElement(node_type, "VMList")
        for index, name in enumerate(names):
            node = lab.node(name)
            ET.SubElement(
                vm_list,
                "VM",
                {
                    "name": name,
                    "ipAddress": node.ip_address,
                    "faultDomain": f"fd:/fd{index}",
                    "updateDomain": f"ud{index}",
                },
            )
    sql = ET.SubElement(config, "SQLCluster")
    ET.SubElement(sql, "ListenerName").text = f"sql1.{DOMAIN}"
    sql_list = ET.SubElement(sql, "SQLVMList")
    for name in SQL_NODES:
        ET.SubElement(sql_list, "SQLVM", {"name": name, "ipAddress": lab.node(name).ip_address})
    shares = ET.SubElement(config, "FileShares")
    for ref, share in (("aos", "aos-storage"), ("agent", "agent")):
        element = ET.SubElement(shares, "FileShare", {"refName": ref})
        ET.SubElement(element, "Name").text = share
        ET.SubElement(element, "Path").text = f"\\\\DC1\\D365FFOStorage\\{share}"
    ET.indent(config, space="    ")
    return b'<?xml version="1.0" encoding="utf-8"?>\r\n' + ET.tostring(config, encoding="utf-8").replace(b"\n", b"\r\n")


def write_templates(lab: Lab) -> None:
    """Infrastructure/ConfigTemplate.xml; from staged on, the new one and InfrastructureOld with the old one."""
    lab.infrastructure.mkdir(exist_ok=True)
    if lab.stage == "before":
        (lab.infrastructure / "ConfigTemplate.xml").write_bytes(_template(lab, "old", "2.17"))
        return
    lab.infrastructure_old.mkdir(exist_ok=True)
    (lab.infrastructure_old / "ConfigTemplate.xml").write_bytes(_template(lab, "old", "2.17"))
    (lab.infrastructure / "ConfigTemplate.xml").write_bytes(_template(lab, "new", "2.17"))


def cluster_config_document(lab: Lab) -> dict[str, object]:
    """The lab's ClusterConfig.json as a document (staged: new primary, old secondary)."""
    staged = lab.stage != "before"
    old_sf, new_sf = lab.cert("ServiceFabric", "old"), lab.cert("ServiceFabric", "new")
    old_client, new_client = lab.cert("ServiceFabricClient", "old"), lab.cert("ServiceFabricClient", "new")

    def pair() -> dict[str, str]:
        if staged:
            return {"Thumbprint": new_sf.thumbprint, "ThumbprintSecondary": old_sf.thumbprint, "X509StoreName": "My"}
        return {"Thumbprint": old_sf.thumbprint, "X509StoreName": "My"}

    clients = [{"CertificateThumbprint": old_client.thumbprint, "IsAdmin": not staged}]
    if staged:
        clients.append({"CertificateThumbprint": new_client.thumbprint, "IsAdmin": True})
    # certmon's read-only monitoring client, by common name and pinned issuer (thumbprint list unchanged)
    issuer = lab.ca.thumbprint
    by_name = [
        {"CertificateCommonName": f"certmon.{DOMAIN}", "CertificateIssuerThumbprint": issuer, "IsAdmin": False}
        for _cert in [lab.service_certs.get("SFMonitorClient")]
        if _cert is not None
    ]
    node_types = []
    for type_name, _purpose, _prefix, primary, _names in NODE_TYPES:
        node_types.append(
            {
                "name": type_name,
                "clientConnectionEndpointPort": "19000",
                "clusterConnectionEndpointPort": "19001",
                "leaseDriverEndpointPort": "19002",
                "serviceConnectionEndpointPort": "19003",
                "httpGatewayEndpointPort": "19080",
                "reverseProxyEndpointPort": "19081",
                "applicationPorts": {"startPort": "20001", "endPort": "20031"},
                "ephemeralPorts": {"startPort": "20606", "endPort": "20861"},
                "isPrimary": primary,
            }
        )
    return {
        "name": "D365FOCluster",
        "clusterConfigurationVersion": "2.0.1" if staged else "2.0.0",
        "apiVersion": "10-2017",
        "nodes": [
            {
                "nodeName": n.name,
                "iPAddress": n.ip_address,
                "nodeTypeRef": n.node_type,
                "faultDomain": f"fd:/fd{_position(n.name)}",
                "upgradeDomain": f"ud{_position(n.name)}",
            }
            for n in lab.nodes
            if n.node_type
        ],
        "properties": {
            "diagnosticsStore": {
                "metadata": "Please replace the diagnostics file share with an actual file share.",
                "dataDeletionAgeInDays": "7",
                "storeType": "FileShare",
                "connectionstring": "\\\\DC1\\D365FFOStorage\\diagnostics",
            },
            "security": {
                "metadata": "The Credential type X509 indicates this cluster is secured using X509 certificates.",
                "ClusterCredentialType": "X509",
                "ServerCredentialType": "X509",
                "CertificateInformation": {
                    "ClusterCertificate": pair(),
                    "ServerCertificate": pair(),
                    "ReverseProxyCertificate": pair(),
                    "ClientCertificateThumbprints": clients,
                    **({"ClientCertificateCommonNames": by_name} if by_name else {}),
                },
            },
            "nodeTypes": node_types,
            "fabricSettings": [
                {
                    "name": "Setup",
                    "parameters": [
                        {"name": "FabricDataRoot", "value": "C:\\ProgramData\\SF"},
                        {"name": "FabricLogRoot", "value": "C:\\ProgramData\\SF\\Log"},
                    ],
                },
            ],
        },
    }


def _position(node: str) -> int:
    """A VM's index within its node type: the fault and upgrade domain the template gives it."""
    return next(names.index(node) for *_rest, names in NODE_TYPES if node in names)


def _write_cluster_config(lab: Lab) -> None:
    text = json.dumps(cluster_config_document(lab), indent=4)
    lab.cluster_config.write_bytes(text.replace("\n", "\r\n").encode())


def localagent_document(lab: Lab) -> dict[str, object]:
    """localagent-config.json as LCS generates it; still pointing at the old cluster certificates."""
    return {
        "componentsFolder": "C:\\LocalAgent\\Components",
        "serviceFabric": {
            "connectionEndpoint": f"{lab.node('ORCH1').ip_address}:19000",
            "clusterId": "d365fo-onprem-cluster",
            "certificateSettings": {
                "serverCertThumbprint": lab.cert("ServiceFabric", "old").thumbprint,
                "clientCertThumbprint": lab.cert("ServiceFabricClient", "old").thumbprint,
            },
        },
        "lcs": {
            "environmentId": "3f1d6c5e-4b6a-4d1f-9d62-2b1fb0d1a001",
            "projectId": "1234567",
            "lcsUrl": "https://lcs.dynamics.com",
        },
        "downloadFolder": "\\\\DC1\\D365FFOStorage\\agent\\assets",
        "deploymentOptions": {"enableSSIS": False, "enableSSRS": True, "sqlServerVersion": "2019"},
        "components": [{"name": "AXSF", "version": "10.0.42"}, {"name": "FinancialReporting", "version": "10.0.42"}],
    }


def _write_localagent(lab: Lab) -> None:
    text = json.dumps(localagent_document(lab), indent=4)
    lab.localagent_config.write_bytes(text.replace("\n", "\r\n").encode())


def _write_node_folders(lab: Lab) -> None:
    lab.password_file.parent.mkdir(exist_ok=True)
    lab.password_file.write_text(lab.password + "\n", encoding="utf-8")
    for node in lab.nodes:
        folder = lab.certs_dir / node.name
        (folder / "Root").mkdir(parents=True, exist_ok=True)
        (folder / "Root" / "lab-root-ca.cer").write_bytes(lab.ca.der)
    install_generation(lab, "old")
    if lab.stage != "before":
        install_generation(lab, "new")


def install_generation(lab: Lab, generation: str) -> list[Path]:
    """Import one generation's PFX files (with private keys) into LocalMachine\\My of every node needing them."""
    password = lab.password.encode()
    written = []
    for (_role, gen), cert in lab.certs.items():
        if gen != generation:
            continue
        # One export per certificate, copied to every node that needs it, as operators do.
        data = pfx_bytes(cert.issued, password)
        for name in cert.nodes:
            path = lab.certs_dir / name / f"{cert.file_stem}.pfx"
            path.write_bytes(data)
            written.append(path)
    return written


def _write_node_facts(lab: Lab, cng_roles: tuple[str, ...]) -> None:
    """The WinRM account, and node.json: SQL Server's TLS thumbprint on SQL nodes, CNG keys where asked."""
    from simulator.winrm.nodefile import CNG_DEFAULT, set_key_provider, set_sql_certificate

    lab.winrm_password_file.write_text(lab.winrm_password + "\n", encoding="utf-8")
    lab.ntlm_user_file.write_text(f"{WINRM_DOMAIN}:{WINRM_USER}:{lab.winrm_password}\n", encoding="utf-8")
    for node in lab.nodes:
        if node.purpose == "SQL":
            set_sql_certificate(lab.certs_dir / node.name, "MSSQLSERVER", lab.current("SQLCluster").thumbprint)
    for role in cng_roles:
        for generation in ("old", "new"):
            cert = lab.certs[(role, generation)]
            for name in cert.nodes:
                set_key_provider(lab.certs_dir / name, cert.thumbprint, CNG_DEFAULT)


def winrm_section(lab: Lab, addresses: dict[str, str]) -> dict[str, object]:
    """The certmon.yaml `sources.winrm` section for simulated nodes at these addresses (NTLM, encrypted)."""
    return {
        "config_template": "Infrastructure",
        "addresses": dict(addresses),
        "transport": "ntlm",
        "stores": ["LocalMachine\\My", "LocalMachine\\Root"],
        "username": lab.winrm_username,
        "password_file": "secrets/winrm-password.txt",
        "interval_seconds": 60,
        "timeout_seconds": 20,
    }


def edit_config(lab: Lab, change: Callable[[dict[str, Any]], None]) -> None:
    """Change the lab's certmon.yaml as a document, keeping its header comment."""
    path = lab.config_file
    text = path.read_text(encoding="utf-8")
    header = "".join(line + "\n" for line in text.splitlines() if line.startswith("#"))
    config = yaml.safe_load(text) or {}
    change(config)
    path.write_text(header + yaml.safe_dump(config, sort_keys=False), encoding="utf-8")


def write_config(lab: Lab, port: int, winrm_addresses: dict[str, str] | None = None) -> None:
    """(Re)write certmon.yaml; with WinRM addresses the nodes are read over WinRM, not from folders."""
    _write_config(lab, port, winrm_addresses)


def _write_config(lab: Lab, port: int, winrm_addresses: dict[str, str] | None = None) -> None:
    config = {
        "environment": lab.environment,
        "data_dir": "data",
        "exporter": {"listen_address": "127.0.0.1", "port": port},
        "sources": {
            "configtemplate": {"infrastructure": "Infrastructure", "interval_seconds": 60}
            | ({"infrastructure_old": "InfrastructureOld"} if lab.stage != "before" else {}),
            "clusterconfig": {"path": "ClusterConfig.json", "interval_seconds": 60},
            "localagent": {"path": "localagent-config.json", "interval_seconds": 60},
            "certfolder": {"path": "certs", "password_file": "secrets/pfx-password.txt", "interval_seconds": 60},
        },
    }
    from simulator.labdata import config_sections

    sources = config["sources"]
    assert isinstance(sources, dict)
    sources.update(config_sections(lab))
    if winrm_addresses is not None:
        sources["certfolder"]["enabled"] = False
        sources["winrm"] = winrm_section(lab, winrm_addresses)
    lab.config_file.write_text(
        "# certmon configuration for the generated lab environment\n" + yaml.safe_dump(config, sort_keys=False),
        encoding="utf-8",
    )
