"""The gateway's REST calls certmon makes, and their answers turned into facts (never trusted blindly).

Paths and api-versions are those of the Service Fabric client REST API; a standalone cluster
serves them on its HTTP gateway (port 19080). Every parser names the call and the field that
did not make sense, so a protocol surprise reads as `bad_output` with a location.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Iterator, Mapping
from datetime import UTC, datetime
from typing import Any

from collectors.certificate import normalize_thumbprint
from collectors.clusterconfig import ClusterConfig, parse_cluster_config
from collectors.errors import CollectorError, Reason, ThumbprintError
from collectors.servicefabric.client import GatewaySession
from collectors.servicefabric.model import (
    AppCertificate,
    NodeCertificateEvent,
    NodeHealth,
    UpgradeDomain,
    UpgradeProgress,
    UpgradeStatus,
)

GET_CONFIGURATION = "/$/GetClusterConfiguration"
GET_VERSION = "/$/GetClusterVersion"
GET_UPGRADE_STATUS = "/$/GetClusterConfigurationUpgradeStatus"
GET_UPGRADE_PROGRESS = "/$/GetUpgradeProgress"
GET_CLUSTER_HEALTH = "/$/GetClusterHealth"
GET_APPLICATIONS = "/Applications"
START_CONFIGURATION_UPGRADE = "/$/StartClusterConfigurationUpgrade"
UPDATE_UPGRADE = "/$/UpdateUpgrade"
API_6_0 = {"api-version": "6.0"}
CONFIGURATION_API_VERSION = "10-2017"
MAX_APPLICATION_PAGES = 100

# Application parameter -> certificate role. A key matches a parameter's whole name, or (for keys
# without a section) the setting after the section ("DataAccess_DataEncryptionCertificateThumbprint").
DEFAULT_PARAMETER_ROLES: dict[str, str] = {
    "DataEncryptionCertificateThumbprint": "DataEncryption",
    "DataSigningCertificateThumbprint": "DataSigning",
    "SessionAuthenticationCertificateThumbprint": "SessionAuthentication",
    "SharedAccessThumbprint": "SharedAccessSMB",
    "ServicePrincipalThumbprint": "Orchestrator",
    # ReportingBootstrapperPkg, section ReportingServices (public tooling: D365FOLBDAdmin Get-D365LBDConfig)
    "ReportingClientCertificateThumbprint": "ReportingService",
    "ServiceFabric_ClientCertificate": "ServiceFabricClient",
    "ServiceFabric_ServerCertificate": "ServiceFabric",
}

_DURATION = re.compile(r"^P(?:(\d+(?:\.\d+)?)D)?(?:T(?:(\d+(?:\.\d+)?)H)?(?:(\d+(?:\.\d+)?)M)?(?:(\d+(?:\.\d+)?)S)?)?$")
_TIMESPAN = re.compile(r"^(?:(\d+)\.)?(\d+):(\d{2}):(\d{2})(?:\.(\d+))?$")
_EXPIRY = re.compile(
    r"thumbprint\s*=\s*(?P<thumbprint>[0-9A-Fa-f ]{40,59}?)\s*,\s*"
    r"expiration\s*=\s*(?P<expiry>\d{4}-\d{2}-\d{2}[ T][\d:.]+)",
    re.I,
)


def parse_duration_seconds(value: Any) -> float | None:
    """Seconds of a gateway duration: milliseconds as a number or string, ISO 8601 (PT1H2M) or d.hh:mm:ss."""
    try:
        seconds = _duration_seconds(value)
    except (OverflowError, ValueError):
        return None  # a number past float's range or Python's digit limit is no duration
    return seconds if seconds is None or math.isfinite(seconds) else None


def _duration_seconds(value: Any) -> float | None:
    if value is None or value == "":
        return None
    if isinstance(value, int | float) and not isinstance(value, bool):
        return float(value) / 1000.0
    text = str(value).strip()
    if re.fullmatch(r"\d+(?:\.\d+)?", text):
        return float(text) / 1000.0
    match = _DURATION.match(text)
    if match and any(match.groups()):
        d, h, m, s = (float(g) if g else 0.0 for g in match.groups())
        return d * 86400 + h * 3600 + m * 60 + s
    match = _TIMESPAN.match(text)
    if match:
        days, hours, minutes, seconds, fraction = match.groups()
        total = int(days or 0) * 86400 + int(hours) * 3600 + int(minutes) * 60 + int(seconds)
        return total + (float(f"0.{fraction}") if fraction else 0.0)
    return None


def format_timespan(seconds: float) -> str:
    """d.hh:mm:ss as PowerShell prints a TimeSpan (4294967295 s -> 49710.06:28:15)."""
    whole = int(seconds)
    days, rest = divmod(whole, 86400)
    hours, rest = divmod(rest, 3600)
    minutes, secs = divmod(rest, 60)
    clock = f"{hours:02d}:{minutes:02d}:{secs:02d}"
    return f"{days}.{clock}" if days else clock


def _utc(text: str) -> datetime | None:
    try:
        moment = datetime.fromisoformat(text.strip().replace("Z", "+00:00"))
    except ValueError:
        return None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def _list(value: Any) -> list[Any]:
    """A JSON array, or nothing: a gateway answer with another type there has no items."""
    return value if isinstance(value, list) else []


def _object(value: Any, where: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise CollectorError(where, Reason.BAD_OUTPUT, "expected a JSON object")
    return value


def parse_configuration(answer: Any, where: str) -> tuple[ClusterConfig, str]:
    """GetClusterConfiguration's {"ClusterConfiguration": "<json string>"}: the config and its text."""
    text = _object(answer, where).get("ClusterConfiguration")
    if not isinstance(text, str):
        raise CollectorError(where, Reason.BAD_OUTPUT, "ClusterConfiguration: expected the configuration as a string")
    try:
        document = json.loads(text)
    except (ValueError, RecursionError) as err:
        raise CollectorError(where, Reason.BAD_OUTPUT, f"ClusterConfiguration is not JSON: {err}") from err
    try:
        return parse_cluster_config(document, where), text
    except CollectorError as err:
        raise CollectorError(where, Reason.BAD_OUTPUT, err.message) from err


def parse_version(answer: Any, where: str) -> str:
    """GetClusterVersion's {"Version": "7.2.457.9590"}."""
    version = _object(answer, where).get("Version")
    if not isinstance(version, str) or not version:
        raise CollectorError(where, Reason.BAD_OUTPUT, "Version: expected a version string")
    return version


def parse_upgrade_status(answer: Any, where: str) -> UpgradeStatus:
    """ClusterConfigurationUpgradeStatusInfo: ConfigVersion is the running version, ProgressStatus a manifest one."""
    item = _object(answer, where)
    manifest = item.get("ProgressStatus")
    return UpgradeStatus(
        state=str(item.get("UpgradeState") or "Invalid"),
        running_version=str(item.get("ConfigVersion") or ""),
        manifest_version=manifest if type(manifest) is int else None,
        details=str(item.get("Details") or ""),
    )


def parse_upgrade_progress(answer: Any, where: str) -> UpgradeProgress:
    """ClusterUpgradeProgressObject: state, versions, domains, durations and the replica-set check timeout."""
    item = _object(answer, where)
    raw_description = item.get("UpgradeDescription")
    description: dict[str, Any] = raw_description if isinstance(raw_description, dict) else {}
    timeout = description.get("UpgradeReplicaSetCheckTimeoutInSeconds")
    if isinstance(timeout, str) and timeout.isdigit():
        timeout = int(timeout)
    domains = tuple(
        UpgradeDomain(str(d.get("Name", "")), str(d.get("State", "")))
        for d in _list(item.get("UpgradeDomains"))
        if isinstance(d, dict)
    )
    current = item.get("CurrentUpgradeDomainProgress")
    current_name = str(current.get("DomainName", "")) if isinstance(current, dict) else ""
    started = item.get("StartTimestampUtc")
    return UpgradeProgress(
        state=str(item.get("UpgradeState") or "Invalid"),
        code_version=str(item.get("CodeVersion") or ""),
        config_version=str(item.get("ConfigVersion") or ""),
        rolling_upgrade_mode=str(item.get("RollingUpgradeMode") or ""),
        replica_set_check_timeout_seconds=timeout if type(timeout) is int else None,
        domains=domains,
        next_domain=str(item.get("NextUpgradeDomain") or ""),
        current_domain=current_name or next((d.name for d in domains if d.state == "InProgress"), ""),
        upgrade_duration_seconds=parse_duration_seconds(item.get("UpgradeDurationInMilliseconds")),
        domain_duration_seconds=parse_duration_seconds(item.get("UpgradeDomainDurationInMilliseconds")),
        started_at=_utc(started) if isinstance(started, str) and started else None,
        failure_reason=str(item.get("FailureReason") or ""),
    )


def parse_cluster_health(answer: Any, where: str) -> tuple[str, tuple[NodeHealth, ...]]:
    """ClusterHealth: the aggregated state and each node's."""
    item = _object(answer, where)
    nodes = tuple(
        NodeHealth(str(n.get("Name", "")), str(n.get("AggregatedHealthState", "")))
        for n in _list(item.get("NodeHealthStates"))
        if isinstance(n, dict)
    )
    return str(item.get("AggregatedHealthState") or ""), nodes


def certificate_events(node: str, answer: Any, where: str) -> Iterator[NodeCertificateEvent]:
    """The node's System.FabricNode Certificate_* events, with the thumbprint and expiry they describe."""
    for event in _list(_object(answer, where).get("HealthEvents")):
        if not isinstance(event, dict):
            continue
        prop = str(event.get("Property", ""))
        if str(event.get("SourceId", "")) != "System.FabricNode" or not prop.startswith("Certificate_"):
            continue
        description = str(event.get("Description", ""))
        match = _EXPIRY.search(description)
        thumbprint, expires = "", None
        if match:
            try:
                thumbprint = normalize_thumbprint(match.group("thumbprint"))
            except ThumbprintError:
                thumbprint = ""
            expires = _utc(match.group("expiry"))
        yield NodeCertificateEvent(
            node=node,
            certificate=prop.removeprefix("Certificate_"),
            thumbprint=thumbprint,
            expires_at=expires,
            health_state=str(event.get("HealthState", "")),
            description=description,
        )


def parameter_role(name: str, roles: Mapping[str, str]) -> str:
    """The role a parameter's thumbprint plays, by whole name or by the setting after its section."""
    lowered = {key.lower(): role for key, role in roles.items()}
    if name.lower() in lowered:
        return lowered[name.lower()]
    setting = re.split(r"[_./:]", name)[-1].lower()
    return next((role for key, role in lowered.items() if re.search(r"[_./:]", key) is None and key == setting), "")


def application_certificates(
    items: Any, roles: Mapping[str, str], where: str
) -> tuple[list[AppCertificate], list[str], list[str]]:
    """(certificates, application names, problems) of one page of ApplicationInfo items."""
    found: list[AppCertificate] = []
    names: list[str] = []
    problems: list[str] = []
    for app in items if isinstance(items, list) else ():
        if not isinstance(app, dict):
            continue
        name = str(app.get("Name", ""))
        names.append(name)
        for parameter in _list(app.get("Parameters")):
            if not isinstance(parameter, dict):
                continue
            key, value = str(parameter.get("Key", "")), parameter.get("Value")
            role = parameter_role(key, roles)
            if not role or not isinstance(value, str) or not value.strip():
                continue
            try:
                thumbprint = normalize_thumbprint(value)
            except ThumbprintError:
                problems.append(f"{name} parameter {key} ({role}) is not a thumbprint: {value[:60]!r}")
                continue
            found.append(
                AppCertificate(
                    name, str(app.get("TypeName", "")), str(app.get("TypeVersion", "")), key, role, thumbprint
                )
            )
    return found, names, problems


def read_applications(
    session: GatewaySession, roles: Mapping[str, str]
) -> tuple[tuple[AppCertificate, ...], tuple[str, ...], list[str]]:
    """Every application's certificate parameters, following continuation tokens."""
    found: list[AppCertificate] = []
    names: list[str] = []
    problems: list[str] = []
    token = ""
    where = f"{session.gateway.url}{GET_APPLICATIONS}"
    for _page in range(MAX_APPLICATION_PAGES):
        params = {"api-version": "6.1", **({"ContinuationToken": token} if token else {})}
        answer = _object(session.get(GET_APPLICATIONS, params), where)
        certs, page_names, page_problems = application_certificates(answer.get("Items"), roles, where)
        found += certs
        names += page_names
        problems += page_problems
        token = str(answer.get("ContinuationToken") or "")
        if not token:
            return tuple(found), tuple(names), problems
    raise CollectorError(where, Reason.BAD_OUTPUT, f"more than {MAX_APPLICATION_PAGES} pages of applications")


def node_health_path(node: str) -> str:
    """/Nodes/{name}/$/GetHealth with the name escaped for a path."""
    from urllib.parse import quote

    return f"/Nodes/{quote(node, safe='')}/$/GetHealth"
