"""Decisions about the cluster drawn from the latest snapshot, shared by findings, remediations and the tracker.

Each function answers one question with an `Evidence`: True, False, or unknown (None) with the
reason. The evaluator's Service Fabric rules (`daemon.rules.sfgateway`) and the remediations'
preconditions call these same functions, never copies of them; the rotation tracker reads the
same answers (upgrade state and configuration version, code version, applications' thumbprints
by role).
"""

from __future__ import annotations

import re
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass

from collectors.answers import Evidence
from collectors.clusterconfig import SF_CLIENT_ROLE, SF_ROLE, ClusterConfig, SfCertificate
from collectors.configtemplate import ConfigTemplate
from collectors.model import Generation, Snapshot, SourceResult
from collectors.servicefabric.model import FAILED_STATES, AppCertificate, GatewayFacts

SOURCE = "servicefabric"
FILE_SOURCE = "clusterconfig"
# Service Fabric refuses certificate rotation before 7.2 (the runbook: not on 7.0.x and 7.1.x).
MIN_ROTATION_VERSION = (7, 2)


def rotation_supported(code_version: str) -> bool | None:
    """False on Service Fabric before 7.2 (7.0.x, 7.1.x), True from 7.2, None when unparseable."""
    match = re.match(r"^\s*(\d+)\.(\d+)", code_version or "")
    if match is None:
        return None
    return (int(match.group(1)), int(match.group(2))) >= MIN_ROTATION_VERSION


def gateway_result(snapshot: Snapshot) -> SourceResult | None:
    """The gateway source's result (one target: the cluster), or None when not configured."""
    results = snapshot.of_source(SOURCE)
    return results[0] if results else None


def gateway_facts(snapshot: Snapshot, *, fresh: bool = False) -> GatewayFacts | None:
    """The gateway's last good facts; with fresh=True only when the latest collection succeeded."""
    result = gateway_result(snapshot)
    if result is None or result.observation is None or not isinstance(result.observation.facts, GatewayFacts):
        return None
    if fresh and not result.health.ok:
        return None
    return result.observation.facts


def _no_gateway(snapshot: Snapshot, what: str) -> Evidence:
    result = gateway_result(snapshot)
    if result is None:
        return Evidence(None, f"{what} is unknown: the gateway source (sources.servicefabric) is not configured")
    if not result.health.ok:
        return Evidence(
            None,
            f"{what} is unknown: the gateway {result.target} is failing ({result.health.reason}): "
            f"{result.health.message}",
        )
    return Evidence(None, f"{what} is unknown: the gateway {result.target} has not been read yet")


def version_evidence(snapshot: Snapshot) -> Evidence:
    """Does the cluster's Service Fabric version support certificate rotation (7.2 or later)?"""
    facts = gateway_facts(snapshot, fresh=True)
    if facts is None:
        return _no_gateway(snapshot, "the Service Fabric version")
    supported = rotation_supported(facts.code_version)
    if supported is None:
        return Evidence(None, f"the Service Fabric version {facts.code_version or '(none reported)'} is not readable")
    if supported:
        return Evidence(True, f"Service Fabric {facts.code_version} supports certificate rotation")
    return Evidence(
        False,
        f"Service Fabric {facts.code_version} does not support certificate rotation (7.0.x and 7.1.x): "
        "upgrade the cluster to 7.2 or later first",
    )


def upgrade_idle_evidence(snapshot: Snapshot) -> Evidence:
    """Is no configuration upgrade in progress?"""
    facts = gateway_facts(snapshot, fresh=True)
    if facts is None:
        return _no_gateway(snapshot, "the upgrade state")
    status = facts.upgrade_status
    if status is None:
        return Evidence(None, "the configuration upgrade status could not be read")
    if facts.upgrade_in_progress:
        return Evidence(
            False,
            f"an upgrade is in progress ({status.state}); the cluster still runs configuration "
            f"{status.running_version or facts.config.version}",
        )
    return Evidence(True, f"no upgrade in progress ({status.state}, running configuration {facts.config.version})")


def upgrade_completed_evidence(snapshot: Snapshot, config_version: str | None = None) -> Evidence:
    """Did the configuration upgrade reach RollingForwardCompleted (for that configuration version)?

    The status's ConfigVersion is the version running now, so "completed for version V" means:
    the state is RollingForwardCompleted and the cluster runs V (the status and the configuration
    GetClusterConfiguration returns agree).
    """
    facts = gateway_facts(snapshot, fresh=True)
    if facts is None:
        return _no_gateway(snapshot, "the configuration upgrade")
    status = facts.upgrade_status
    if status is None:
        return Evidence(None, "the configuration upgrade status could not be read")
    wanted = f" to configuration {config_version}" if config_version else ""
    running = status.running_version or facts.config.version
    if not status.completed:
        return Evidence(False, f"the configuration upgrade is {status.state}; the cluster runs configuration {running}")
    if config_version and (facts.config.version != config_version or running != config_version):
        return Evidence(
            False,
            f"the cluster runs configuration {running}, not {config_version}: the upgrade{wanted} has not "
            "been started, has not finished, or was rolled back",
        )
    return Evidence(True, f"the configuration upgrade{wanted} completed (RollingForwardCompleted)")


def stuck_reason(facts: GatewayFacts, stuck_after_seconds: float) -> str:
    """Why the upgrade is stuck or failed, or "" when it is not (or nothing is known)."""
    status, progress = facts.upgrade_status, facts.upgrade_progress
    state = status.state if status is not None else (progress.state if progress is not None else "")
    version = status.running_version if status is not None else ""
    if state in FAILED_STATES:
        failure = f" ({progress.failure_reason})" if progress is not None and progress.failure_reason else ""
        return f"the configuration upgrade (from configuration {version or facts.config.version}) is {state}{failure}"
    if progress is None or not facts.upgrade_in_progress:
        return ""
    spent = progress.domain_duration_seconds
    if spent is not None and spent >= stuck_after_seconds:
        domain = progress.current_domain or progress.next_domain or "?"
        return (
            f"the upgrade from configuration {version or facts.config.version} has spent {spent / 60:.0f} min on "
            f"upgrade domain {domain} ({progress.completed_domains} of {len(progress.domains)} domains done)"
        )
    return ""


def single_node_types(config: ClusterConfig) -> list[str]:
    """Node types with one node: the replica-set check waits on them (one SSRS node, one MR node)."""
    counts: dict[str, int] = defaultdict(int)
    for node in config.nodes:
        counts[node.node_type] += 1
    return sorted(name for name, count in counts.items() if count == 1 and name)


def replica_timeout_reset(facts: GatewayFacts) -> bool:
    """True while an upgrade runs with the replica-set check timeout back at 49710.06:28:15."""
    progress = facts.upgrade_progress
    return bool(progress is not None and facts.upgrade_in_progress and progress.replica_check_timeout_reset)


def cluster_configs(snapshot: Snapshot) -> list[tuple[str, str, ClusterConfig]]:
    """(source, target, configuration) of the staged file and of the running cluster, stale data included."""
    found: list[tuple[str, str, ClusterConfig]] = list(
        (FILE_SOURCE, target, config) for target, config in snapshot.facts(FILE_SOURCE, ClusterConfig)
    )
    found += [(SOURCE, target, facts.config) for target, facts in snapshot.facts(SOURCE, GatewayFacts)]
    return found


def app_certificates(snapshot: Snapshot) -> list[AppCertificate]:
    """Every certificate parameter of the running applications (empty when unknown)."""
    facts = gateway_facts(snapshot)
    return list(facts.applications or ()) if facts is not None else []


# The current certificate-rotation article needs the agent share's config.json step only for
# LocalAgent 3.2.2 and earlier. The LocalAgent version is read from the running fabric:/LocalAgent
# application's TypeVersion (UNVERIFIED: that the application type version is the LocalAgent release).
LOCALAGENT_APPLICATION = "fabric:/LocalAgent"
LAST_LOCALAGENT_NEEDING_SHARE_CONFIG = (3, 2, 2)


def localagent_version(snapshot: Snapshot) -> str:
    """The running LocalAgent application's type version, or "" when the gateway does not tell."""
    for app in app_certificates(snapshot):
        if app.application.lower() == LOCALAGENT_APPLICATION.lower() or app.type_name == "LocalAgentType":
            return app.type_version
    return ""


def share_config_needed(version: str) -> bool | None:
    """Does this LocalAgent version still read the agent share's config.json thumbprints (3.2.2 and earlier)?"""
    parts = re.findall(r"\d+", version or "")
    if len(parts) < 2:
        return None
    numbers = tuple(int(p) for p in parts[:3]) + (0,) * (3 - min(len(parts), 3))
    return numbers <= LAST_LOCALAGENT_NEEDING_SHARE_CONFIG


def app_thumbprints_by_role(snapshot: Snapshot) -> dict[str, set[str]]:
    """Role -> the thumbprints the running applications use for it."""
    out: dict[str, set[str]] = defaultdict(set)
    for app in app_certificates(snapshot):
        out[app.role].add(app.thumbprint)
    return dict(out)


def in_use_evidence(snapshot: Snapshot, server: str, clients: Iterable[str], old_server: str = "") -> Evidence:
    """Does the running cluster use the new server/cluster certificate and the new admin client?

    Slots with a certificate of their own (neither `server` nor `old_server`, and not the cluster
    or server certificate) are not part of the rotation and are not judged.
    """
    facts = gateway_facts(snapshot, fresh=True)
    if facts is None:
        return _no_gateway(snapshot, "which certificates the cluster uses")
    running = facts.config
    related = [
        c
        for c in running.certificates
        if c.kind in ("cluster", "server") or {c.thumbprint, c.thumbprint_secondary} & {server, old_server} - {""}
    ]
    wrong = [f"{c.kind} primary is {c.thumbprint}" for c in related if c.thumbprint != server]
    admins = {c.thumbprint for c in running.clients if c.is_admin}
    wrong += [f"client {t} is not admin" for t in clients if t not in admins]
    presented = facts.server_certificate
    if presented is not None and presented.thumbprint != server:
        wrong.append(f"the gateway presents {presented.thumbprint}")
    if wrong:
        detail = "; ".join(wrong)
        return Evidence(False, f"the running configuration {running.version} does not use {server} yet: {detail}")
    shown = "; the gateway presents it" if presented is not None else ""
    return Evidence(True, f"the running configuration {running.version} uses {server}{shown}")


@dataclass(frozen=True, slots=True)
class SfRotation:
    """The Service Fabric thumbprints of the rotation under way, from the ConfigTemplate pair and the configuration."""

    new_server: str = ""
    old_server: str = ""
    new_client: str = ""
    old_client: str = ""
    basis: str = ""
    problem: str = ""

    @property
    def known(self) -> bool:
        """True when the new server and client and the old client are all determined."""
        return not self.problem and bool(self.new_server and self.new_client and self.old_client)


def sf_rotation(snapshot: Snapshot, config: ClusterConfig | None) -> SfRotation:
    """New thumbprints from Infrastructure's ConfigTemplate.xml; old ones from InfrastructureOld or the config."""
    templates = [t for _, t in snapshot.facts("configtemplate", ConfigTemplate)]
    new = [t for t in templates if t.generation is Generation.NEW]
    old = [t for t in templates if t.generation is Generation.OLD]
    new_server = next((tp for t in new for tp in t.thumbprints(SF_ROLE)), "")
    new_client = next((tp for t in new for tp in t.thumbprints(SF_CLIENT_ROLE)), "")
    if not new_server or not new_client:
        missing = " and ".join(r for r, tp in ((SF_ROLE, new_server), (SF_CLIENT_ROLE, new_client)) if not tp)
        problem = (
            f"the new ConfigTemplate.xml (Infrastructure) names no {missing} thumbprint"
            if new
            else "the new ConfigTemplate.xml (sources.configtemplate.infrastructure) is not read"
        )
        return SfRotation(new_server, "", new_client, "", "", problem)
    old_server = next((tp for t in old for tp in t.thumbprints(SF_ROLE) if tp != new_server), "")
    old_client = next((tp for t in old for tp in t.thumbprints(SF_CLIENT_ROLE) if tp != new_client), "")
    basis = "ConfigTemplate.xml (Infrastructure" + (" and InfrastructureOld)" if old else ")")
    if config is not None:
        if not old_server:
            declared = (tp for c in config.certificates for tp in (c.thumbprint, c.thumbprint_secondary))
            old_server = next((tp for tp in declared if tp and tp != new_server), "")
        if not old_client:
            others = [c.thumbprint for c in config.clients if c.thumbprint and c.thumbprint != new_client]
            admins = [c.thumbprint for c in config.clients if c.is_admin and c.thumbprint != new_client]
            candidates = admins or others
            if len(set(candidates)) == 1:
                old_client = candidates[0]
                basis += " and the cluster configuration's client list"
    if not old_client:
        return SfRotation(
            new_server,
            old_server,
            new_client,
            "",
            basis,
            "the old admin client certificate cannot be told apart: add InfrastructureOld's ConfigTemplate.xml "
            "(sources.configtemplate.infrastructure_old)",
        )
    return SfRotation(new_server, old_server, new_client, old_client, basis)


def rotation_slots(config: ClusterConfig, rotation: SfRotation) -> list[SfCertificate]:
    """The certificate slots this rotation moves: those on the old or new server thumbprint.

    A slot with a certificate of its own (Microsoft's samples give the reverse proxy one) is not
    part of the rotation: staging and clean-up leave it as it is.
    """
    wanted = {tp for tp in (rotation.new_server, rotation.old_server) if tp}
    return [c for c in config.certificates if c.thumbprint and c.thumbprint in wanted]


def other_slots(config: ClusterConfig, rotation: SfRotation) -> list[SfCertificate]:
    """Slots declared by thumbprint that this rotation does not touch."""
    ours = rotation_slots(config, rotation)
    return [c for c in config.certificates if c.thumbprint and c not in ours]


def leftover_secondaries(config: ClusterConfig, rotation: SfRotation) -> list[str]:
    """ThumbprintSecondary values of this rotation's slots that are not its (new primary, old secondary) pair."""
    return [
        f"{c.kind} ThumbprintSecondary {c.thumbprint_secondary} (primary {c.thumbprint})"
        for c in rotation_slots(config, rotation)
        if c.thumbprint_secondary
        and not (
            c.thumbprint == rotation.new_server
            and (not rotation.old_server or c.thumbprint_secondary == rotation.old_server)
        )
    ]


def slot_stage(cert: SfCertificate, rotation: SfRotation) -> str:
    """One slot's place in the rotation: before, staged, rotated, or mixed."""
    if cert.thumbprint != rotation.new_server:
        return "mixed" if cert.thumbprint_secondary else "before"
    if not cert.thumbprint_secondary:
        return "rotated"
    if not rotation.old_server or cert.thumbprint_secondary == rotation.old_server:
        return "staged"
    return "mixed"


def slot_states(config: ClusterConfig, rotation: SfRotation) -> list[str]:
    """Each slot's and the admin clients' state, in words, for an operator fixing a file by hand."""
    out = [
        f"{c.kind}: {slot_stage(c, rotation)} (Thumbprint {c.thumbprint}"
        + (f", ThumbprintSecondary {c.thumbprint_secondary})" if c.thumbprint_secondary else ")")
        for c in rotation_slots(config, rotation)
    ]
    out += [
        f"{c.kind}: its own certificate {c.thumbprint}, not part of this rotation (left as it is)"
        for c in other_slots(config, rotation)
    ]
    admins = {c.thumbprint for c in config.clients if c.is_admin}
    listed = {c.thumbprint for c in config.clients}
    for label, thumbprint in (("new admin client", rotation.new_client), ("old admin client", rotation.old_client)):
        state = "admin" if thumbprint in admins else "read-only" if thumbprint in listed else "not listed"
        out.append(f"{label} {thumbprint}: {state}")
    return out


def rotation_stage(config: ClusterConfig, rotation: SfRotation) -> str:
    """Where a configuration stands in the rotation: before, staged, rotated, or mixed."""
    slots = rotation_slots(config, rotation)
    if not slots:
        return "mixed"
    stages = {slot_stage(c, rotation) for c in slots}
    admins = {c.thumbprint for c in config.clients if c.is_admin}
    listed = {c.thumbprint for c in config.clients}
    if stages == {"before"}:
        return "before"
    if stages == {"staged"} and rotation.new_client in admins and rotation.old_client in listed:
        return "staged"
    if stages == {"rotated"} and rotation.new_client in admins and rotation.old_client not in listed:
        return "rotated"
    return "mixed"
