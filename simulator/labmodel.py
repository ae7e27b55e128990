"""The lab's model: its nodes, roles, certificates and stages, apart from the builder in `simulator.lab`.

A leaf of the lab: `labconfigs`, `labdata` and the WinRM nodes read it; `lab` builds it and imports them.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

from simulator.pki import Issued

DOMAIN = "contoso.lab"
# The rotation as the demo walks it (simulator/stages.py), with two detours: key-acl-missing from staged (a new
# key the gMSA cannot read, before the switch) and removed-early from re-encrypting.
STAGES = ("before", "staged", "key-acl-missing", "upgraded", "re-encrypting", "removed-early", "done")
#: the stages `build_lab` writes directly; later ones are reached by operating on the running lab
BUILT_STAGES = ("before", "staged")
# The account certmon uses on the (simulated) Windows nodes.
WINRM_DOMAIN, WINRM_USER = "CONTOSO", "svc-certmon"
# ConfigTemplate.xml ADServiceAccounts (refName, gMSA name) with made-up domain SIDs for the lab's key ACLs.
LAB_DOMAIN_SID = "S-1-5-21-3623811015-3361044348-30300820"
SERVICE_ACCOUNTS = (("gmsaLocalAgent", "svc-LocalAgent$", 1105), ("gmsaAXSF", "svc-AXSF$", 1106))


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
        ("AOS", "Orchestrator", "BI", "MR"),
        True,
        12,
        dns=(f"*.{DOMAIN}", f"sf.d365ffo.onprem.{DOMAIN}", f"ax.d365ffo.onprem.{DOMAIN}"),
    ),
    RoleSpec("ServiceFabricClient", "Client", f"client.{DOMAIN}", ("AOS", "Orchestrator", "BI", "MR"), True, 40),
    RoleSpec(
        "ServiceFabricEncryption",
        "axdataencipherment",
        "axdataencipherment.d365ffo.onprem",
        ("AOS", "Orchestrator", "BI", "MR"),
        False,
        75,
    ),
    RoleSpec("SessionAuthentication", "SessionAuthentication", f"SessionAuthentication.{DOMAIN}", ("AOS",), False, 35),
    RoleSpec("DataEncryption", "DataEncryption", "DataEncryption.d365ffo.onprem", ("AOS",), False, 25),
    RoleSpec("DataSigning", "DataSigning", "DataSigning.d365ffo.onprem", ("AOS",), False, 60),
    RoleSpec("FinancialReporting", "FinancialReporting", f"FinancialReporting.{DOMAIN}", ("AOS", "MR"), True, 50),
    RoleSpec("ReportingService", "ReportingService", f"ReportingService.{DOMAIN}", ("AOS", "BI"), True, 50),
    RoleSpec("Orchestrator", "LocalAgent", f"OnPremLocalAgent.{DOMAIN}", ("Orchestrator",), True, 45),
    RoleSpec("SSRSHTTPS", "SSRSHTTPS", f"bi1.{DOMAIN}", ("BI",), True, 55, dns=(f"bi1.{DOMAIN}",)),
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
    ("ReportServerType", "BI", "Rep", False, ("BI1",)),
    ("MRType", "MR", "MR", False, ("MR1",)),
)
# Node types the lab's ConfigTemplate.xml lists with disabled="true" (not deployed, never probed).
DISABLED_NODE_TYPES: tuple[tuple[str, str, str, tuple[str, ...]], ...] = (
    ("BatchOnlyAOSNodeType", "AOS", "AOS", ("batchaos1", "batchaos2")),
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
        """Whether the rotation has got as far as `stage` (a detour counts as the stage it leaves from)."""
        return STAGES.index(self.stage) >= STAGES.index(stage)
