"""The Service Fabric remediations: stage a rotation, clean up the old thumbprints, unblock a waiting upgrade.

* `sf-stage-rotation` (step sf-staged): ClusterConfig.json gets the new thumbprint as primary and
  the old one as `ThumbprintSecondary` (cluster, server, reverse proxy), the old admin client
  becomes read-only and the new one admin, the version goes up; with an admin certificate for the
  gateway, apply also starts the configuration upgrade and follows it.
* `sf-cleanup-old-certs` (step sf-cleaned): once the staged configuration runs and the new
  certificates are in use, the secondaries and the old client go, and that upgrade is started.
* `sf-replica-check-timeout` (step sf-upgraded): the running upgrade's replica-set check timeout
  goes to 30 s through UpdateUpgrade, so a node type with a single node stops holding it.

The file edits are in `remediations.sfconfig`, the gateway calls in `remediations.sfgateway`,
the preconditions in `remediations.sfchecks` (on `collectors.servicefabric.evidence`).
"""

from __future__ import annotations

import hashlib
from abc import abstractmethod
from pathlib import Path
from typing import TYPE_CHECKING

from collectors.clusterconfig import ClusterConfig, parse_cluster_config
from collectors.errors import CollectorError
from collectors.files import decode_text, parse_json, read_bytes
from collectors.servicefabric import api
from collectors.servicefabric.evidence import (
    FILE_SOURCE,
    SOURCE,
    SfRotation,
    gateway_facts,
    in_use_evidence,
    rotation_stage,
    single_node_types,
    slot_states,
    upgrade_completed_evidence,
    upgrade_idle_evidence,
    version_evidence,
)
from collectors.sql.reencryption import reencryption_complete_evidence
from remediations.base import Check, Remediation, RemediationContext, RemediationError, VerificationError
from remediations.plan import FileChange, HttpRequest, Plan
from remediations.sfchecks import (
    check,
    file_checks,
    matches_running_check,
    node_certificates_check,
    read_config_file,
    rotation_check,
    secondary_check,
)
from remediations.sfconfig import SfRotationThumbprints, cleanup, stage
from remediations.sfgateway import (
    UPGRADE_POLICY,
    admin_identity,
    describe_upgrade,
    follow_upgrade,
    gateway_access,
    read_upgrade,
    report,
    start_configuration_upgrade,
    update_replica_check_timeout,
)
from remediations.sfpreflight import (
    no_in_place_swap_check,
    pair_differs_check,
    same_as_running_check,
    target_version,
    version_increases_check,
)

if TYPE_CHECKING:
    from remediations.checkpoint import Checkpoint

REPLICA_CHECK_TIMEOUT_SECONDS = 30


def preflight_checks(ctx: RemediationContext, config: ClusterConfig, rotation: SfRotation, done: str) -> list[Check]:
    """The pre-flight checks of a configuration upgrade (remediations.sfpreflight) for this step's target."""
    stage_now = rotation_stage(config, rotation)
    checks = [pair_differs_check(rotation)]
    if stage_now in ("before", "staged", "rotated"):
        checks.append(version_increases_check(ctx, target_version(config, stage_now, done)))
    checks.append(no_in_place_swap_check(ctx, config, rotation))
    path = ctx.file(FILE_SOURCE)
    if path is not None:
        try:
            text = decode_text(read_bytes(path), str(path))
        except CollectorError as err:
            checks.append(Check("file equals the running configuration apart from the rotation", False, str(err)))
        else:
            checks.append(same_as_running_check(ctx, text))
    return checks


def _thumbprints(rotation: SfRotation) -> SfRotationThumbprints:
    return SfRotationThumbprints(rotation.new_server, rotation.new_client, rotation.old_client, rotation.old_server)


class _ClusterConfigStep(Remediation):
    """A ClusterConfig.json edit followed by the configuration upgrade that applies it."""

    sources = (FILE_SOURCE, SOURCE)
    #: the stage ClusterConfig.json is in once this step's edit is written
    done_stage: str
    #: the current runbook's Update-SFClusterConfig.ps1 switch for the same step
    script_switch: str

    @abstractmethod
    def edit(self, data: bytes, config_stage: str, rotation: SfRotation, path: Path) -> FileChange | None:
        """The file change this step makes from the current file, or None when the file is already done."""

    def plan(self, ctx: RemediationContext) -> Plan:
        """The file edit (when needed) and the upgrade start (when an admin certificate is available)."""
        path = ctx.file(FILE_SOURCE)
        if path is None:
            raise RemediationError("sources.clusterconfig.path is not set")
        data, config = read_config_file(path)
        rotation = rotation_check(ctx, config)[1]
        if not rotation.known:
            raise RemediationError(rotation.problem)
        change = self.edit(data, rotation_stage(config, rotation), rotation, path)
        after = change.after if change is not None else data
        target = parse_cluster_config(parse_json(after, str(path)), str(path))
        changes: list[FileChange | HttpRequest] = [change] if change is not None else []
        follow_up: list[str] = []
        facts = gateway_facts(ctx.snapshot, fresh=True)
        running = facts.config.version if facts is not None else ""
        status = facts.upgrade_status if facts is not None else None
        target_stage = rotation_stage(target, rotation)
        if running == target.version or target_stage != self.done_stage:
            pass
        elif facts is not None and facts.upgrade_in_progress:
            # The status names only the version running now, never the target: whatever this upgrade
            # is, Service Fabric refuses a second one until it ends.
            state = status.state if status is not None else "in progress"
            follow_up.append(
                f"A configuration upgrade is {state} (the cluster still runs {running}); certmon does not start "
                f"another. When it ends, run this remediation again: it is done once the cluster runs {target.version}."
            )
        else:
            evidence, identity = admin_identity(ctx)
            access = gateway_access(ctx)
            if evidence.true and identity is not None and access is not None:
                changes.append(self._start_request(access.url, path, after, target.version, identity.thumbprint))
            else:
                follow_up += [
                    f"certmon does not start the upgrade ({evidence.detail}): on a cluster node, run "
                    f'`Start-ServiceFabricClusterConfigurationUpgrade -ClusterConfigPath "{path}"`.',
                    "Follow `Get-ServiceFabricClusterConfigurationUpgradeStatus` until UpgradeState is "
                    f"RollingForwardCompleted and ConfigVersion (the running version) is {target.version}.",
                    f"With the current runbook, `Update-SFClusterConfig.ps1 {self.script_switch}` does this step; "
                    "certmon follows either from the cluster's configuration.",
                ]
        single = single_node_types(target)
        if single and changes:
            follow_up.append(
                f"Node types with a single node ({', '.join(single)}) can hold the upgrade on its replica-set check: "
                "if it waits, run `certmon remediate sf-replica-check-timeout --apply`."
            )
        if not changes:
            reason = f"ClusterConfig.json is {target_stage} (version {target.version})"
            reason += " and the cluster runs it" if running == target.version else ""
            return Plan(self.name, (), reason=reason, follow_up=tuple(follow_up))
        return Plan(self.name, tuple(changes), follow_up=tuple(follow_up))

    @staticmethod
    def _start_request(url: str, path: Path, data: bytes, version: str, admin: str) -> HttpRequest:
        digest = hashlib.sha256(data).hexdigest()[:16]
        policy = ", ".join(f"{k}={v}" for k, v in UPGRADE_POLICY.items() if not str(k).startswith("MaxPercent"))
        return HttpRequest(
            "POST",
            f"{url}{api.START_CONFIGURATION_UPGRADE}?api-version=6.0",
            f"start the configuration upgrade to {path.name} version {version} (Service Fabric answers 202)",
            (
                ("ClusterConfig", f"{path.name} as written, version {version}, {len(data)} bytes, sha256 {digest}..."),
                ("health policy", f"{policy}, no unhealthy nodes or applications allowed"),
                ("client certificate", f"{admin} (admin)"),
            ),
        )

    def apply(self, ctx: RemediationContext, plan: Plan, checkpoint: Checkpoint) -> None:
        """Write the file, then start the upgrade (the last, irreversible step) and follow it."""
        for change in plan.files():
            checkpoint.write_file(change)
        if not any(isinstance(c, HttpRequest) for c in plan.changes):
            return
        path = ctx.file(FILE_SOURCE)
        access = gateway_access(ctx)
        evidence, identity = admin_identity(ctx)
        if path is None or access is None or identity is None:
            raise RemediationError(f"cannot start the configuration upgrade: {evidence.detail}")
        data = read_bytes(path)
        text = decode_text(data, str(path))
        version = parse_cluster_config(parse_json(data, str(path)), str(path)).version
        start_configuration_upgrade(access, identity, text)
        report(ctx, f"{self.name}: the gateway accepted the configuration upgrade to {version}")
        follow_upgrade(ctx, access, identity, version)

    def verify(self, ctx: RemediationContext, plan: Plan) -> None:
        """ClusterConfig.json parses and is at this step's stage."""
        for change in plan.files():
            try:
                config = parse_cluster_config(parse_json(read_bytes(change.path), str(change.path)), str(change.path))
            except CollectorError as err:
                raise VerificationError(f"after the write: {err}") from err
            rotation = rotation_check(ctx, config)[1]
            stage_now = rotation_stage(config, rotation)
            if stage_now != self.done_stage:
                raise VerificationError(
                    f"{change.path}: reads as {stage_now} after the write, expected {self.done_stage}"
                )


class StageRotation(_ClusterConfigStep):
    """Stage the new Service Fabric certificates and start the configuration upgrade."""

    name = "sf-stage-rotation"
    description = (
        "Stage the new Service Fabric certificates in ClusterConfig.json (new primary, old secondary, new admin "
        "client, version raised) and start the configuration upgrade."
    )
    step = "sf-staged"
    done_stage = "staged"
    script_switch = "-UpdateThumbprints"

    def preconditions(self, ctx: RemediationContext) -> list[Check]:
        """File staged-able, thumbprints known, no leftover secondary, SF 7.2+, certs on nodes, no upgrade running."""
        checks, config = file_checks(ctx)
        rotation_result, rotation = rotation_check(ctx, config)
        checks.append(rotation_result)
        if config is not None and rotation.known and not config.by_common_name:
            checks.append(secondary_check(ctx, config, rotation))
            checks.append(matches_running_check(ctx, config, rotation))
            checks.append(node_certificates_check(ctx, config, (rotation.new_server, rotation.new_client)))
            checks += preflight_checks(ctx, config, rotation, self.done_stage)
        checks.append(check("Service Fabric 7.2 or later", version_evidence(ctx.snapshot)))
        checks.append(check("no upgrade in progress", upgrade_idle_evidence(ctx.snapshot)))
        return checks

    def edit(self, data: bytes, config_stage: str, rotation: SfRotation, path: Path) -> FileChange | None:
        """Stage the file when it is still before the rotation."""
        if config_stage in ("staged", "rotated"):
            return None
        if config_stage != "before":
            config = parse_cluster_config(parse_json(data, str(path)), str(path))
            slots = "; ".join(slot_states(config, rotation))
            raise RemediationError(f"{path.name} is partly staged ({slots}); fix it by hand")
        after, values = stage(data, _thumbprints(rotation), str(path))
        return FileChange(path, data, after, values)


class CleanupOldCerts(_ClusterConfigStep):
    """Remove the old thumbprints once the staged configuration runs, and start that upgrade."""

    name = "sf-cleanup-old-certs"
    description = (
        "Remove ThumbprintSecondary and the old admin client from ClusterConfig.json once the staged configuration "
        "runs and the new certificates are in use, and start that configuration upgrade."
    )
    step = "sf-cleaned"
    done_stage = "rotated"
    script_switch = "-RemoveOldThumbprints"

    def preconditions(self, ctx: RemediationContext) -> list[Check]:
        """The staged configuration's upgrade completed and the cluster uses the new certificates."""
        checks, config = file_checks(ctx)
        rotation_result, rotation = rotation_check(ctx, config)
        checks.append(rotation_result)
        if config is not None and rotation.known and not config.by_common_name:
            facts = gateway_facts(ctx.snapshot, fresh=True)
            staged = rotation_stage(config, rotation)
            expected = config.version if staged == "staged" or facts is None else facts.config.version
            if staged not in ("staged", "rotated"):
                slots = "; ".join(slot_states(config, rotation))
                checks.append(
                    Check("ClusterConfig.json staged", False, f"ClusterConfig.json is {staged}, not staged: {slots}")
                )
            checks.append(
                check("staged configuration upgrade completed", upgrade_completed_evidence(ctx.snapshot, expected))
            )
            checks += preflight_checks(ctx, config, rotation, self.done_stage)
            checks.append(
                check(
                    "new certificates in use",
                    in_use_evidence(ctx.snapshot, rotation.new_server, [rotation.new_client], rotation.old_server),
                )
            )
            checks.append(reencryption_finished_check(ctx))
        return checks

    def edit(self, data: bytes, config_stage: str, rotation: SfRotation, path: Path) -> FileChange | None:
        """Clean the staged file; nothing when it is already clean."""
        if config_stage == "rotated":
            return None
        if config_stage != "staged":
            config = parse_cluster_config(parse_json(data, str(path)), str(path))
            slots = "; ".join(slot_states(config, rotation))
            raise RemediationError(f"{path.name} is {config_stage}, not staged ({slots}): nothing to clean up")
        after, values = cleanup(data, rotation.old_client, str(path), new_server=rotation.new_server)
        return FileChange(path, data, after, values) if values else None


def reencryption_finished_check(ctx: RemediationContext) -> Check:
    """The runbook's order: the old thumbprints go last, after the encrypted data is re-encrypted.

    Refused while AXDB shows data still encrypted with the old certificate (the checklist orders
    `sf-cleaned` after `reencryption-complete`). Where re-encryption is not watched (no SQL source,
    no probe) the check passes and says so: the clean-up itself needs no re-encryption evidence.
    """
    name = "re-encryption finished (the runbook cleans up last)"
    evidence = reencryption_complete_evidence(ctx.snapshot)
    if evidence.value is False:
        return Check(
            name, False, f"{evidence.detail}; clean up after the re-encryption job finishes (reencryption-complete)"
        )
    if evidence.value is None:
        return Check(name, True, f"not watched: {evidence.detail}; confirm the re-encryption finished first")
    return Check(name, True, evidence.detail)


class ReplicaCheckTimeout(Remediation):
    """Set the running upgrade's replica-set check timeout to 30 seconds."""

    name = "sf-replica-check-timeout"
    description = (
        "Set the running upgrade's replica-set check timeout to 30 s (UpdateUpgrade), so node types with a single "
        "node (one SSRS node) stop holding the upgrade on the 49710.06:28:15 default."
    )
    step = "sf-upgraded"
    sources = (SOURCE,)

    def preconditions(self, ctx: RemediationContext) -> list[Check]:
        """Gateway read, an upgrade in progress, an admin certificate the cluster accepts."""
        facts = gateway_facts(ctx.snapshot, fresh=True)
        checks = [
            Check(
                "gateway read",
                facts is not None,
                f"{facts.gateway}, configuration {facts.config.version}"
                if facts
                else upgrade_idle_evidence(ctx.snapshot).detail,
            )
        ]
        if facts is not None:
            status = facts.upgrade_status
            state = f"{status.state}, running configuration {status.running_version}" if status else "status unknown"
            running = facts.upgrade_in_progress
            detail = f"running: {state}" if running else f"no upgrade is running ({state}): nothing to unblock"
            checks.append(Check("an upgrade is in progress", running, detail))
        checks.append(check("admin client certificate", admin_identity(ctx)[0]))
        return checks

    def plan(self, ctx: RemediationContext) -> Plan:
        """UpdateUpgrade with ReplicaSetCheckTimeoutInMilliseconds 30000, unless it is 30 s already."""
        facts = gateway_facts(ctx.snapshot, fresh=True)
        access = gateway_access(ctx)
        if facts is None or access is None or facts.upgrade_progress is None:
            raise RemediationError("the upgrade progress is unknown (the gateway was not read)")
        progress = facts.upgrade_progress
        current = progress.replica_set_check_timeout_seconds
        if current == REPLICA_CHECK_TIMEOUT_SECONDS:
            return Plan(self.name, (), reason=f"the replica-set check timeout is already {current} s")
        shown = api.format_timespan(current) if current is not None else "unknown"
        single = ", ".join(single_node_types(facts.config)) or "none"
        request = HttpRequest(
            "POST",
            f"{access.url}{api.UPDATE_UPGRADE}?api-version=6.0",
            "update the running upgrade's replica-set check timeout",
            (
                ("UpgradeKind", "Rolling"),
                ("UpdateDescription.RollingUpgradeMode", progress.rolling_upgrade_mode or "UnmonitoredAuto"),
                (
                    "UpdateDescription.ReplicaSetCheckTimeoutInMilliseconds",
                    f"{REPLICA_CHECK_TIMEOUT_SECONDS * 1000} (now {shown})",
                ),
                ("single-node node types", single),
            ),
        )
        return Plan(self.name, (request,))

    def apply(self, ctx: RemediationContext, plan: Plan, checkpoint: Checkpoint) -> None:
        """UpdateUpgrade; the previous timeout is put back if the run is rolled back."""
        access = gateway_access(ctx)
        evidence, identity = admin_identity(ctx)
        if access is None or identity is None:
            raise RemediationError(f"cannot update the upgrade: {evidence.detail}")
        try:
            _status, progress = read_upgrade(access, identity)
        except CollectorError as err:
            raise RemediationError(f"cannot read the upgrade progress: {err}") from err
        previous = progress.replica_set_check_timeout_seconds
        mode = progress.rolling_upgrade_mode
        if previous is not None:

            def restore() -> str:
                update_replica_check_timeout(access, identity, mode, previous)
                return f"set back to {api.format_timespan(previous)}"

            checkpoint.on_rollback("the replica-set check timeout", restore)
        update_replica_check_timeout(access, identity, mode, REPLICA_CHECK_TIMEOUT_SECONDS)

    def verify(self, ctx: RemediationContext, plan: Plan) -> None:
        """The upgrade progress reports the 30 s timeout."""
        access = gateway_access(ctx)
        if access is None:
            raise VerificationError("no gateway access to verify the change")
        try:
            status, progress = read_upgrade(access, admin_identity(ctx)[1])
        except CollectorError as err:
            raise VerificationError(f"cannot read the upgrade progress: {err}") from err
        if progress.replica_set_check_timeout_seconds != REPLICA_CHECK_TIMEOUT_SECONDS:
            raise VerificationError(
                f"the upgrade reports a replica-set check timeout of {progress.replica_set_check_timeout_seconds} s "
                f"after the update ({describe_upgrade(status, progress)})"
            )
        report(ctx, f"{self.name}: {describe_upgrade(status, progress)}, replica-set check timeout 30 s")
