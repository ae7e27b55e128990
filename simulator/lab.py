"""The lab: a generated D365 F&O on-premises environment, mid-rotation, on disk.

Certificates for every role in an old and a new generation, the ConfigTemplate pair,
ClusterConfig.json with the new thumbprints staged, localagent-config.json, and a folder of
exported certificates per node. The demo runs on it; the tests build it in a temporary folder.
"""

from __future__ import annotations

import secrets
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import yaml
from cryptography.x509.oid import NameOID

from simulator.pki import Issued, days, make_certificate, pfx_bytes, rsa_key
from simulator.secretfile import secret_folder, write_secret

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
    from simulator.labconfigs import write_cluster_config, write_localagent, write_templates

    write_templates(lab)
    _issue_service_certs(lab)
    write_cluster_config(lab)
    write_localagent(lab)
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


def _write_node_folders(lab: Lab) -> None:
    secret_folder(lab.password_file.parent)
    write_secret(lab.password_file, lab.password + "\n")
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
            write_secret(path, data)
            written.append(path)
    return written


def _write_node_facts(lab: Lab, cng_roles: tuple[str, ...]) -> None:
    """The WinRM account, and node.json: SQL Server's TLS thumbprint on SQL nodes, CNG keys where asked."""
    from simulator.winrm.nodefile import CNG_DEFAULT, set_key_provider, set_sql_certificate

    secret_folder(lab.winrm_password_file.parent)
    write_secret(lab.winrm_password_file, lab.winrm_password + "\n")
    write_secret(lab.ntlm_user_file, f"{WINRM_DOMAIN}:{WINRM_USER}:{lab.winrm_password}\n")
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
