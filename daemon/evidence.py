"""The answers the rules and the rotation checklist ask of particular sources, with their evidence.

Each function answers one question with an `Evidence` (True, False, or unknown with the
reason); callers treat unknown as "not safe", never as "done". The source's own module decides
(collectors/sql/reencryption.py, collectors/credentials.py, collectors/servicefabric/evidence.py),
so the rules, the checklist and the remediations' preconditions call the same functions.

Questions one source's facts answer alone are asked of the source's module directly:
`collectors.sql.reencryption.reencryption_complete_evidence` (the rule
data-encryption-old-cert-removed-early, the steps reencryption-complete and old-certs-removable),
`reencryption_enabled_evidence` (the step reencryption-enabled) and
`collectors.credentials.credentials_rotated_evidence` (the step credentials-rotated). Here are the
ones that combine a source with the ConfigTemplate pair or the cluster configuration:

- `axdb_backed_up` (SQL: msdb.dbo.backupset, after the new certificates' notBefore): the step
  axdb-backed-up.
- `sf_upgrade_completed` (Service Fabric gateway: GetClusterConfigurationUpgradeStatus): the
  step sf-upgraded, hence sf-secondary-lingering once the rest of the rotation is done.
- `app_settings_applied` (Service Fabric gateway: AXSF application parameters): the step
  lcs-settings-applied.

The agent share's `config.json` returns `AgentConfig` facts like localagent-config.json does,
and `agent_configs` below picks both up.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime

from collectors.agentconfig import AgentConfig
from collectors.answers import Evidence
from collectors.clusterconfig import ClusterConfig
from collectors.servicefabric import evidence as sf_evidence
from collectors.sql import reencryption
from collectors.winrm.packages import package_thumbprints_by_role
from daemon.context import Context
from daemon.inventory import template_pair

LOCALAGENT_SOURCE = "localagent"


GATEWAY_MISSING = "the Service Fabric gateway source (sources.servicefabric) is not configured or not read yet"


def certificates_generated_at(ctx: Context) -> datetime | None:
    """When the new certificates were made: the latest notBefore among the rotated roles' new certificates."""
    pair = template_pair(ctx)
    new = {t for role in pair.rotated_roles() for t in pair.new_thumbprints(role)}
    starts = [o.certificate.not_before for o in ctx.snapshot.certificates() if o.thumbprint in new]
    return max(starts, default=None)


def axdb_backed_up(ctx: Context) -> Evidence:
    """Did a full AXDB backup finish after the new certificates were generated?"""
    return reencryption.axdb_backup_evidence(ctx.snapshot, certificates_generated_at(ctx))


def sf_upgrade_completed(ctx: Context) -> Evidence:
    """Did the cluster configuration upgrade reach RollingForwardCompleted for the staged configuration?"""
    staged = [config.version for _, config in ctx.snapshot.facts(sf_evidence.FILE_SOURCE, ClusterConfig)]
    return sf_evidence.upgrade_completed_evidence(ctx.snapshot, staged[0] if staged else None)


# The application settings the LCS "update settings" step changes, and the role each carries.
LCS_ROLES = ("DataEncryption", "DataSigning", "SessionAuthentication")


def app_settings_applied(ctx: Context) -> Evidence:
    """Does the running AXSF application use the new data encryption, signing and session thumbprints?"""
    # The running packages' settings on the nodes (sources.winrm.package_settings) count as much as the
    # application parameters: a node whose package still names an old certificate has not taken the change.
    packages = package_thumbprints_by_role(ctx.snapshot)
    if sf_evidence.gateway_facts(ctx.snapshot) is None and not packages:
        return Evidence.unknown(f"{GATEWAY_MISSING} (application parameters of AXSF)")
    used = sf_evidence.app_thumbprints_by_role(ctx.snapshot) if sf_evidence.gateway_facts(ctx.snapshot) else {}
    for role, thumbprints in packages.items():
        used[role] = used.get(role, set()) | thumbprints
    pair = template_pair(ctx)
    lagging, unknown = [], []
    for role in LCS_ROLES:
        new = set(pair.new_thumbprints(role))
        if not new or not pair.rotated(role):
            continue
        if role not in used:
            unknown.append(role)
        elif not used[role] <= new:
            lagging.append(f"{role} uses {', '.join(sorted(used[role] - new))}")
    if lagging:
        return Evidence(False, f"the running applications still use old certificates: {'; '.join(lagging)}")
    if unknown:
        return Evidence.unknown(f"no application parameter or package setting carries {', '.join(unknown)}")
    rotated = [role for role in LCS_ROLES if pair.rotated(role)]
    return Evidence(True, f"the running applications use the new {', '.join(rotated) or 'certificates'}")


def agent_configs(ctx: Context) -> Iterator[tuple[str, str, AgentConfig]]:
    """(source, target, facts) of every agent configuration: localagent-config.json and the share's config.json."""
    for result in ctx.snapshot:
        facts = result.observation.facts if result.observation is not None else None
        if isinstance(facts, AgentConfig):
            yield result.source, result.target, facts
