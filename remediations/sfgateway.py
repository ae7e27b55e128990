"""Admin calls to the Service Fabric gateway for the SF remediations, and following an upgrade's progress.

The daemon puts a `GatewayAccess` in `RemediationContext.options["servicefabric"]` when the
gateway is configured, and a progress callback in `options["progress"]` (the CLI prints it).
The admin certificate presented is the configured one the *running* configuration lists as
admin (`Connector.admin_identity`): the old client before a rotation is staged, the new one after.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from collectors.base import Deadline
from collectors.errors import CollectorError
from collectors.servicefabric import api
from collectors.servicefabric.connector import Connector
from collectors.servicefabric.evidence import Evidence, gateway_facts
from collectors.servicefabric.identity import ClientIdentity
from collectors.servicefabric.model import FAILED_STATES, UpgradeProgress, UpgradeStatus
from remediations.base import RemediationContext, RemediationError

log = logging.getLogger("certmon.remediations")

OPTION = "servicefabric"
PROGRESS_OPTION = "progress"
# Health policy sent with StartClusterConfigurationUpgrade: the usual cluster upgrade policy
# (wait 30 s after each domain, stay healthy 1 min, retry health checks 45 min, 2 h per domain).
UPGRADE_POLICY: dict[str, Any] = {
    "HealthCheckRetryTimeout": "PT0H45M0S",
    "HealthCheckWaitDurationInSeconds": "PT0H0M30S",
    "HealthCheckStableDurationInSeconds": "PT0H1M0S",
    "UpgradeDomainTimeoutInSeconds": "PT2H0M0S",
    "UpgradeTimeoutInSeconds": "PT12H0M0S",
    "MaxPercentUnhealthyApplications": 0,
    "MaxPercentUnhealthyNodes": 0,
    "MaxPercentDeltaUnhealthyNodes": 0,
    "MaxPercentUpgradeDomainDeltaUnhealthyNodes": 0,
}


@dataclass(frozen=True)
class GatewayAccess:
    """How the remediations reach the gateway; `sleep` is injected so tests follow an upgrade without waiting."""

    connector: Connector
    timeout: float = 30.0
    follow_seconds: float = 60.0
    poll_seconds: float = 2.0
    sleep: Callable[[float], None] = time.sleep

    @property
    def url(self) -> str:
        """The first gateway URL, for plans."""
        return self.connector.config.gateways[0].url


def gateway_access(ctx: RemediationContext) -> GatewayAccess | None:
    """The configured gateway access, or None."""
    value = ctx.options.get(OPTION)
    return value if isinstance(value, GatewayAccess) else None


def report(ctx: RemediationContext, text: str) -> None:
    """Tell the operator how the upgrade moves (the CLI prints it; elsewhere it is logged)."""
    callback = ctx.options.get(PROGRESS_OPTION)
    if callable(callback):
        callback(text)
    else:
        log.info("%s", text)


def admin_identity(ctx: RemediationContext) -> tuple[Evidence, ClientIdentity | None]:
    """Can certmon make admin calls now: a gateway, fresh facts, and an admin certificate the cluster accepts?"""
    access = gateway_access(ctx)
    if access is None:
        return Evidence(False, "no Service Fabric gateway is configured (sources.servicefabric)"), None
    facts = gateway_facts(ctx.snapshot, fresh=True)
    if facts is None:
        return Evidence(False, "the gateway was not read successfully; its running configuration is unknown"), None
    try:
        identity = access.connector.admin_identity(facts.config)
    except CollectorError as err:
        return Evidence(False, err.message), None
    return Evidence(True, f"admin client certificate {identity.thumbprint} ({identity.source})"), identity


def _post(access: GatewayAccess, identity: ClientIdentity, path: str, body: dict[str, Any], what: str) -> None:
    try:
        session = access.connector.open_as(identity, Deadline.after(access.timeout))
    except CollectorError as err:
        raise RemediationError(f"{what}: cannot reach the gateway: {err}") from err
    try:
        session.call("POST", path, api.API_6_0, body)
    except CollectorError as err:
        raise RemediationError(f"{what}: the gateway refused: {err.message}") from err
    finally:
        session.close()


def start_configuration_upgrade(access: GatewayAccess, identity: ClientIdentity, config_text: str) -> None:
    """POST StartClusterConfigurationUpgrade with the configuration and the health policy (202 Accepted)."""
    body = {"ClusterConfig": config_text, **UPGRADE_POLICY}
    _post(access, identity, api.START_CONFIGURATION_UPGRADE, body, "StartClusterConfigurationUpgrade")


def update_replica_check_timeout(access: GatewayAccess, identity: ClientIdentity, mode: str, seconds: int) -> None:
    """POST UpdateUpgrade with ReplicaSetCheckTimeoutInMilliseconds (the rolling mode is required alongside)."""
    body = {
        "UpgradeKind": "Rolling",
        "UpdateDescription": {
            "RollingUpgradeMode": mode or "UnmonitoredAuto",
            "ReplicaSetCheckTimeoutInMilliseconds": seconds * 1000,
        },
    }
    _post(access, identity, api.UPDATE_UPGRADE, body, "UpdateUpgrade")


def read_upgrade(access: GatewayAccess, identity: ClientIdentity | None) -> tuple[UpgradeStatus, UpgradeProgress]:
    """The configuration upgrade status and the upgrade progress, read now."""
    session = access.connector.open_as(identity, Deadline.after(access.timeout))
    try:
        url = session.gateway.url
        status = api.parse_upgrade_status(session.get(api.GET_UPGRADE_STATUS, api.API_6_0), url)
        progress = api.parse_upgrade_progress(session.get(api.GET_UPGRADE_PROGRESS, api.API_6_0), url)
    finally:
        session.close()
    return status, progress


def describe_upgrade(status: UpgradeStatus, progress: UpgradeProgress) -> str:
    """One line: state, the configuration running now, domain."""
    domain = f", upgrade domain {progress.current_domain}" if progress.current_domain else ""
    done = f" ({progress.completed_domains} of {len(progress.domains)} domains done)" if progress.domains else ""
    return f"{status.state}, running configuration {status.running_version}{domain}{done}"


def follow_upgrade(ctx: RemediationContext, access: GatewayAccess, identity: ClientIdentity, version: str) -> str:
    """Report the upgrade to `version` until it completes, fails or `follow_seconds` pass; never raises."""
    waited = 0.0
    last = ""
    while True:
        try:
            status, progress = read_upgrade(access, identity)
        except CollectorError as err:
            text = f"could not read the upgrade status: {err}"
            report(ctx, text)
            return text
        line = describe_upgrade(status, progress)
        if line != last:
            report(ctx, line)
            last = line
        # ConfigVersion is the running version: it reaches `version` only when the upgrade completed.
        if status.running_version == version and not status.in_progress:
            return line
        if status.state in FAILED_STATES and not status.in_progress:
            return f"{line}; the upgrade to {version} did not complete"
        if waited >= access.follow_seconds:
            return f"{line}; still running after {waited:.0f} s: follow it with `certmon status` or the sf metrics"
        access.sleep(access.poll_seconds)
        waited += access.poll_seconds
