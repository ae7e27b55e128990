"""What the Service Fabric gateway tells certmon: the facts one collection of the cluster produces."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from collectors.certificate import Certificate
from collectors.clusterconfig import ClusterConfig

# UpgradeState values of GetClusterConfigurationUpgradeStatus and GetUpgradeProgress.
ROLLING_FORWARD_COMPLETED = "RollingForwardCompleted"
IN_PROGRESS_STATES = ("RollingForwardPending", "RollingForwardInProgress", "RollingBackInProgress")
FAILED_STATES = ("RollingBackInProgress", "RollingBackCompleted", "Failed")
# UInt32.MaxValue seconds: what a new upgrade resets the replica-set check timeout to; PowerShell
# prints it as 49710.06:28:15, and single-node node types (one SSRS node) then wait on it forever.
REPLICA_CHECK_TIMEOUT_RESET_SECONDS = 4294967295


@dataclass(frozen=True, slots=True)
class UpgradeStatus:
    """GetClusterConfigurationUpgradeStatus: where the configuration upgrade stands.

    `running_version` is the answer's `ConfigVersion`: the configuration version the cluster runs
    *now* (the Upgrade Orchestration Service fills it from the current configuration), not the
    target of the upgrade under way; it changes only once an upgrade completes. `manifest_version`
    is `ProgressStatus`: the cluster manifest version of the fabric upgrade, not a percentage.
    The status never names the target configuration version.
    """

    state: str
    running_version: str
    manifest_version: int | None = None
    details: str = ""

    @property
    def in_progress(self) -> bool:
        """True while an upgrade is pending, rolling forward or rolling back."""
        return self.state in IN_PROGRESS_STATES

    @property
    def completed(self) -> bool:
        """True once the upgrade rolled forward to its configuration."""
        return self.state == ROLLING_FORWARD_COMPLETED


@dataclass(frozen=True, slots=True)
class UpgradeDomain:
    """An upgrade domain and its state (Pending, InProgress, Completed)."""

    name: str
    state: str


@dataclass(frozen=True, slots=True)
class UpgradeProgress:
    """GetUpgradeProgress: the running (or last) cluster upgrade."""

    state: str
    code_version: str
    #: GetUpgradeProgress's ConfigVersion: on a standalone cluster the cluster manifest version
    config_version: str
    rolling_upgrade_mode: str = ""
    replica_set_check_timeout_seconds: int | None = None
    domains: tuple[UpgradeDomain, ...] = ()
    next_domain: str = ""
    current_domain: str = ""
    upgrade_duration_seconds: float | None = None
    domain_duration_seconds: float | None = None
    started_at: datetime | None = None
    failure_reason: str = ""

    @property
    def replica_check_timeout_reset(self) -> bool:
        """True when the replica-set check timeout is back at its default of 49710.06:28:15."""
        return self.replica_set_check_timeout_seconds == REPLICA_CHECK_TIMEOUT_RESET_SECONDS

    @property
    def completed_domains(self) -> int:
        """Upgrade domains already done."""
        return sum(1 for d in self.domains if d.state == "Completed")


@dataclass(frozen=True, slots=True)
class NodeCertificateEvent:
    """A node's own certificate report (System.FabricNode Certificate_*: FabricNode_CertificateCloseToExpiration)."""

    node: str
    certificate: str
    thumbprint: str
    expires_at: datetime | None
    health_state: str
    description: str

    @property
    def close_to_expiration(self) -> bool:
        """True when the node reports the certificate as a warning or error."""
        return self.health_state in ("Warning", "Error")


@dataclass(frozen=True, slots=True)
class NodeHealth:
    """A node's aggregated health, as GetClusterHealth lists it."""

    name: str
    health_state: str


@dataclass(frozen=True, slots=True)
class AppCertificate:
    """A thumbprint an application parameter carries, and the role the parameter map gives it."""

    application: str
    type_name: str
    type_version: str
    parameter: str
    role: str
    thumbprint: str


@dataclass(frozen=True)
class GatewayFacts:
    """Everything one collection of the gateway read; parts that failed are None with a problem beside."""

    gateway: str
    config: ClusterConfig
    config_text: str
    code_version: str = ""
    upgrade_status: UpgradeStatus | None = None
    upgrade_progress: UpgradeProgress | None = None
    cluster_health: str = ""
    nodes_health: tuple[NodeHealth, ...] = ()
    certificate_events: tuple[NodeCertificateEvent, ...] = ()
    #: None when /Applications could not be read (unknown, not "no applications")
    applications: tuple[AppCertificate, ...] | None = None
    application_names: tuple[str, ...] = ()
    server_certificate: Certificate | None = None
    client_thumbprint: str = ""

    @property
    def upgrade_in_progress(self) -> bool:
        """True while the configuration (or cluster) upgrade is moving; unknown counts as False."""
        status = self.upgrade_status
        progress = self.upgrade_progress
        return bool((status and status.in_progress) or (progress and progress.state in IN_PROGRESS_STATES))

    def app_thumbprints(self, role: str) -> list[AppCertificate]:
        """Application parameters that carry a thumbprint of the role."""
        return [a for a in self.applications or () if a.role == role]
