"""The cluster behind the simulated gateway: running configuration, configuration upgrades, applications.

A configuration upgrade walks the upgrade domains of the new configuration, `step_seconds` each,
on an injected clock (tests advance a `ManualClock`; the demo shortens the step), then applies
the configuration. It refuses what Service Fabric refuses: an upgrade while another runs, a
version that does not increase, malformed configurations, and a rotation from two certificates
to two different certificates. Fault knobs: `stuck` (the walk never leaves its domain) and
`reset_replica_timeout` (a new upgrade gets the 49710.06:28:15 default, and a domain holding a
single-node node type then waits until UpdateUpgrade lowers the timeout).

The running configuration is kept, and answered, the way the cluster serialises it: PascalCase
keys (`Name`, `ClusterConfigurationVersion`, `Nodes`, `Properties.Security...`), whatever casing
the uploaded file had. Service Fabric's Upgrade Orchestration Service turns its model classes into
JSON with Newtonsoft's default settings (no camelCase resolver, null values left out, indented).

GetClusterConfigurationUpgradeStatus follows the same service: `ConfigVersion` is the
configuration version the cluster runs now (it changes only when an upgrade completes), and
`ProgressStatus` is the cluster manifest version of the fabric upgrade (a number that goes up by
one per configuration upgrade), never a percentage or the target version.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import hashes

from collectors.clusterconfig import parse_cluster_config
from collectors.errors import CollectorError
from simulator.sfjson import certificate_information, pascal_case, pascal_text

RESET_TIMEOUT = 4294967295
# A domain with a single-node node type waits on the replica-set check while the timeout is longer.
BLOCKING_TIMEOUT = 1200
CERT_KEYS = ("ClusterCertificate", "ServerCertificate", "ReverseProxyCertificate")


class FabricFailure(Exception):
    """A request Service Fabric refuses: HTTP status, FabricError code and message."""

    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message

    def body(self) -> dict[str, Any]:
        """The FabricError document."""
        return {"Error": {"Code": self.code, "Message": self.message}}


class ManualClock:
    """A monotonic clock that only moves when told (tests)."""

    def __init__(self, start: float = 1000.0) -> None:
        self.now = start
        self._lock = threading.Lock()

    def __call__(self) -> float:
        with self._lock:
            return self.now

    def advance(self, seconds: float) -> None:
        """Move the clock forward."""
        with self._lock:
            self.now += seconds


@dataclass
class UpgradeRun:
    """A configuration upgrade in progress (or finished)."""

    target_text: str
    target_version: str
    domains: list[str]
    started_at: float
    started_wall: datetime
    domain_started_at: float
    replica_timeout: int
    mode: str = "UnmonitoredAuto"
    index: int = 0
    #: when a held domain was released: it then takes a whole step from that moment
    released_at: float = 0.0
    state: str = "RollingForwardInProgress"


def thumbprint(cert: x509.Certificate) -> str:
    """Windows thumbprint."""
    return cert.fingerprint(hashes.SHA1()).hex().upper()  # noqa: S303 - Windows thumbprint


def _cert_set(info: dict[str, Any], key: str) -> set[str]:
    entry = info.get(key) or {}
    return {str(v).upper() for v in (entry.get("Thumbprint"), entry.get("ThumbprintSecondary")) if v}


def _version_key(version: str) -> tuple[int, ...]:
    try:
        return tuple(int(part) for part in version.split("."))
    except ValueError as err:
        raise FabricFailure(
            400, "FABRIC_E_INVALID_CONFIGURATION", f"clusterConfigurationVersion {version!r} is not a version"
        ) from err


@dataclass
class SimulatedCluster:
    """State of one standalone cluster; every method is thread-safe and advances the upgrade walk first."""

    config_text: str
    code_version: str = "7.2.457.9590"
    applications: list[dict[str, Any]] = field(default_factory=list)
    certificates: dict[str, x509.Certificate] = field(default_factory=dict)
    issuers: Sequence[x509.Certificate] = ()
    clock: Callable[[], float] = time.monotonic
    wall: Callable[[], datetime] = lambda: datetime.now(UTC)
    step_seconds: float = 5.0
    page_size: int = 2
    stuck: bool = False
    reset_replica_timeout: bool = False
    replica_timeout: int = 600
    upgrade: UpgradeRun | None = None
    #: the cluster manifest version: ProgressStatus, and GetUpgradeProgress's ConfigVersion
    manifest_version: int = 1
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def __post_init__(self) -> None:
        self.config_text = pascal_text(json.loads(self.config_text))

    def running_version(self) -> str:
        """ClusterConfigurationVersion of the running configuration (call with the lock held)."""
        return str(self.document.get("ClusterConfigurationVersion", ""))

    # -- configuration ---------------------------------------------------------------------

    @property
    def document(self) -> dict[str, Any]:
        """The running configuration, parsed, in the cluster's PascalCase (tests may set `config_text` directly)."""
        return dict(pascal_case(json.loads(self.config_text)))

    def running_text(self) -> str:
        """The running configuration's text."""
        with self._lock:
            self._advance()
            return self.config_text

    def _info(self, document: dict[str, Any]) -> dict[str, Any]:
        return certificate_information(document)

    def client_role(self, cert: x509.Certificate | None) -> str:
        """ "admin", "read" or "" for a presented client certificate, by thumbprint or common name and issuer."""
        if cert is None:
            return ""
        with self._lock:
            self._advance()
            info = self._info(self.document)
        tp = thumbprint(cert)
        for client in info.get("ClientCertificateThumbprints") or ():
            if str(client.get("CertificateThumbprint", "")).upper() == tp:
                return "admin" if client.get("IsAdmin") is True else "read"
        names = cert.subject.get_attributes_for_oid(x509.NameOID.COMMON_NAME)
        common_name = str(names[0].value) if names else ""
        issuer = next((thumbprint(i) for i in self.issuers if i.subject == cert.issuer), "")
        for entry in info.get("ClientCertificateCommonNames") or ():
            pinned = {t.strip().upper() for t in str(entry.get("CertificateIssuerThumbprint", "")).split(",") if t}
            if entry.get("CertificateCommonName") == common_name and (not pinned or issuer in pinned):
                return "admin" if entry.get("IsAdmin") is True else "read"
        return ""

    def server_thumbprint(self) -> str:
        """The server certificate the running configuration names as primary."""
        with self._lock:
            self._advance()
            entry = self._info(self.document).get("ServerCertificate") or {}
        return str(entry.get("Thumbprint", "")).upper()

    # -- the upgrade walk ------------------------------------------------------------------

    def _single_node_domains(self, document: dict[str, Any]) -> set[str]:
        by_type: dict[str, list[dict[str, Any]]] = {}
        for node in document.get("Nodes", []):
            by_type.setdefault(str(node.get("NodeTypeRef", "")), []).append(node)
        return {str(nodes[0].get("UpgradeDomain", "")) for nodes in by_type.values() if len(nodes) == 1}

    def _blocked(self, run: UpgradeRun) -> bool:
        if self.stuck:
            return True
        if run.replica_timeout <= BLOCKING_TIMEOUT:
            return False
        return run.domains[run.index] in self._single_node_domains(json.loads(run.target_text))

    def _advance(self) -> None:
        run = self.upgrade
        now = self.clock()
        while run is not None and run.state == "RollingForwardInProgress":
            start = max(run.domain_started_at, run.released_at)
            if self._blocked(run) or now - start < self.step_seconds:
                return
            run.domain_started_at = start + self.step_seconds
            run.index += 1
            if run.index >= len(run.domains):
                run.state = "RollingForwardCompleted"
                self.config_text = run.target_text
                self.manifest_version += 1

    def start_upgrade(self, body: Any) -> None:
        """StartClusterConfigurationUpgrade: validate like Service Fabric, then start the walk."""
        if not isinstance(body, dict) or not isinstance(body.get("ClusterConfig"), str):
            raise FabricFailure(400, "E_INVALIDARG", "ClusterConfig: the cluster configuration JSON string is required")
        text = body["ClusterConfig"]
        try:
            target = pascal_case(json.loads(text))
        except ValueError as err:
            message = f"ClusterConfig is not valid JSON: {err}"
            raise FabricFailure(400, "FABRIC_E_INVALID_CONFIGURATION", message) from err
        with self._lock:
            self._advance()
            if self.upgrade is not None and self.upgrade.state == "RollingForwardInProgress":
                raise FabricFailure(
                    400,
                    "FABRIC_E_FABRIC_UPGRADE_IN_PROGRESS",
                    f"a configuration upgrade to {self.upgrade.target_version} is already in progress",
                )
            self._validate(self.document, target)
            domains = sorted({str(n.get("UpgradeDomain", "")) for n in target.get("Nodes", [])}) or ["ud0"]
            now = self.clock()
            self.upgrade = UpgradeRun(
                target_text=pascal_text(target),
                target_version=str(target["ClusterConfigurationVersion"]),
                domains=domains,
                started_at=now,
                started_wall=self.wall(),
                domain_started_at=now,
                replica_timeout=RESET_TIMEOUT if self.reset_replica_timeout else self.replica_timeout,
            )

    def _validate(self, current: dict[str, Any], target: Any) -> None:
        try:
            parsed = parse_cluster_config(target, "ClusterConfig")
        except CollectorError as err:
            raise FabricFailure(400, "FABRIC_E_INVALID_CONFIGURATION", err.message) from err
        if not parsed.nodes or not parsed.version or not parsed.name:
            raise FabricFailure(
                400, "FABRIC_E_INVALID_CONFIGURATION", "name, clusterConfigurationVersion and nodes are required"
            )
        if parsed.name != current.get("Name"):
            raise FabricFailure(400, "FABRIC_E_FABRIC_UPGRADE_VALIDATION_ERROR", "the cluster name cannot change")
        old_version = str(current.get("ClusterConfigurationVersion", "0"))
        if _version_key(parsed.version) <= _version_key(old_version):
            raise FabricFailure(
                400,
                "FABRIC_E_FABRIC_UPGRADE_VALIDATION_ERROR",
                f"the new clusterConfigurationVersion {parsed.version} must be greater than {old_version}",
            )
        now_info, new_info = self._info(current), self._info(target)
        for key in CERT_KEYS:
            before, after = _cert_set(now_info, key), _cert_set(new_info, key)
            if before and not after:
                raise FabricFailure(400, "FABRIC_E_FABRIC_UPGRADE_VALIDATION_ERROR", f"{key} cannot be removed")
            if len(before) == 2 and len(after) == 2 and before != after:
                raise FabricFailure(
                    400,
                    "FABRIC_E_FABRIC_UPGRADE_VALIDATION_ERROR",
                    f"{key}: Upgrading from 2 different certificates to 2 different certificates is not allowed",
                )
            if before and after and not before & after:
                raise FabricFailure(
                    400,
                    "FABRIC_E_FABRIC_UPGRADE_VALIDATION_ERROR",
                    f"{key}: the new certificates must keep one of the current ones ({', '.join(sorted(before))})",
                )

    def update_upgrade(self, body: Any) -> None:
        """UpdateUpgrade: change the running upgrade's replica-set check timeout (and mode)."""
        description = body.get("UpdateDescription") if isinstance(body, dict) else None
        if not isinstance(description, dict) or not description.get("RollingUpgradeMode"):
            raise FabricFailure(400, "E_INVALIDARG", "UpdateDescription.RollingUpgradeMode is required")
        with self._lock:
            self._advance()
            run = self.upgrade
            if run is None or run.state != "RollingForwardInProgress":
                raise FabricFailure(400, "FABRIC_E_FABRIC_NOT_UPGRADING", "no cluster upgrade is in progress")
            timeout = description.get("ReplicaSetCheckTimeoutInMilliseconds")
            if timeout is not None:
                if not isinstance(timeout, int) or timeout < 0:
                    raise FabricFailure(400, "E_INVALIDARG", "ReplicaSetCheckTimeoutInMilliseconds must be an integer")
                held = self._blocked(run)
                run.replica_timeout = timeout // 1000
                if held and not self._blocked(run):
                    run.released_at = self.clock()
            run.mode = str(description["RollingUpgradeMode"])

    # -- answers -----------------------------------------------------------------------------

    def status(self) -> dict[str, Any]:
        """ClusterConfigurationUpgradeStatusInfo: ConfigVersion is the running version, even mid-upgrade."""
        with self._lock:
            self._advance()
            state = self.upgrade.state if self.upgrade is not None else "RollingForwardCompleted"
            return {
                "UpgradeState": state,
                "ProgressStatus": self.manifest_version,
                "ConfigVersion": self.running_version(),
                "Details": "",
            }

    def progress(self) -> dict[str, Any]:
        """ClusterUpgradeProgressObject."""
        with self._lock:
            self._advance()
            run = self.upgrade
            now = self.clock()
            if run is None:
                version = str(self.manifest_version)
                domains = sorted({str(n.get("UpgradeDomain", "")) for n in self.document.get("Nodes", [])})
                states = [{"Name": d, "State": "Completed"} for d in domains]
                return self._progress(
                    state="RollingForwardCompleted",
                    version=version,
                    domains=states,
                    timeout=self.replica_timeout,
                    current="",
                    total=0.0,
                    on_domain=0.0,
                )
            states = [
                {"Name": d, "State": "Completed" if i < run.index else "InProgress" if i == run.index else "Pending"}
                for i, d in enumerate(run.domains)
            ]
            running = run.state == "RollingForwardInProgress"
            progress = self._progress(
                state=run.state,
                version=str(self.manifest_version + (1 if running else 0)),
                domains=states,
                timeout=run.replica_timeout,
                current=run.domains[run.index] if running else "",
                total=now - run.started_at,
                on_domain=now - run.domain_started_at if running else 0.0,
            )
            progress["StartTimestampUtc"] = run.started_wall.strftime("%Y-%m-%dT%H:%M:%S.000Z")
            progress["RollingUpgradeMode"] = progress["UpgradeDescription"]["RollingUpgradeMode"] = run.mode
            return progress

    def _progress(
        self,
        *,
        state: str,
        version: str,
        domains: list[dict[str, str]],
        timeout: int,
        current: str,
        total: float,
        on_domain: float,
    ) -> dict[str, Any]:
        pending = [d["Name"] for d in domains if d["State"] == "Pending"]
        return {
            "CodeVersion": self.code_version,
            "ConfigVersion": version,
            "UpgradeDomains": domains,
            "UpgradeState": state,
            "NextUpgradeDomain": pending[0] if pending else "",
            "RollingUpgradeMode": "UnmonitoredAuto",
            "UpgradeDescription": {
                "CodeVersion": self.code_version,
                "ConfigVersion": version,
                "UpgradeKind": "Rolling",
                "RollingUpgradeMode": "UnmonitoredAuto",
                "UpgradeReplicaSetCheckTimeoutInSeconds": timeout,
                "ForceRestart": False,
            },
            "UpgradeDurationInMilliseconds": _iso_duration(total),
            "UpgradeDomainDurationInMilliseconds": _iso_duration(on_domain),
            "CurrentUpgradeDomainProgress": {"DomainName": current, "NodeUpgradeProgressList": []},
            "FailureReason": "None",
        }

    def application_page(self, token: str) -> dict[str, Any]:
        """One page of ApplicationInfo items and the continuation token of the next."""
        start = int(token) if token.isdigit() else 0
        items = self.applications[start : start + self.page_size]
        following = start + self.page_size
        return {"ContinuationToken": str(following) if following < len(self.applications) else "", "Items": items}


def _iso_duration(seconds: float) -> str:
    hours, rest = divmod(max(seconds, 0.0), 3600)
    minutes, secs = divmod(rest, 60)
    return f"PT{int(hours)}H{int(minutes)}M{secs:.3f}S"
