"""Hook points: facts that come from sources still being built, unknown until those sources land.

Each function here answers one question the rules and the rotation checklist ask. Today
they answer "unknown" with the reason; the owner of the source replaces the body with a
reading of its facts (`ctx.snapshot.facts(SOURCE, FactsType)`). Nothing else changes: the
callers already treat unknown as "not safe", never as "done".

- `reencryption_complete` (SQL: re-encryption job, progress probes): the rule
  data-encryption-old-cert-removed-early, the steps reencryption-complete and
  old-certs-removable, and whether the old DataEncryption certificate is safe to remove.
- `reencryption_enabled` (SQL: SYSFLIGHTING, SECURITYCONFIG): the step reencryption-enabled.
- `axdb_backed_up` (SQL: msdb.dbo.backupset): the step axdb-backed-up.
- `sf_upgrade_completed` (Service Fabric gateway: GetClusterConfigurationUpgradeStatus): the
  step sf-upgraded, hence sf-secondary-lingering once the rest of the rotation is done.
- `app_settings_applied` (Service Fabric gateway: AXSF application parameters): the step
  lcs-settings-applied.
- `credentials_rotated` (Credentials.json CMS recipients): the step credentials-rotated.

The agent share's `config.json` needs no hook: its collector returns `AgentConfig` facts
like localagent-config.json does, and `agent_configs` below already picks them up.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Generic, TypeVar

from collectors.agentconfig import AgentConfig
from collectors.clusterconfig import ClusterConfig
from collectors.servicefabric import evidence as sf_evidence
from daemon.context import Context
from daemon.inventory import template_pair

T = TypeVar("T")

LOCALAGENT_SOURCE = "localagent"


@dataclass(frozen=True)
class Fact(Generic[T]):
    """An answer with the evidence behind it, or unknown (value None) with the reason."""

    value: T | None
    reason: str

    @property
    def known(self) -> bool:
        """True when the answer is backed by evidence."""
        return self.value is not None

    @classmethod
    def unknown(cls, reason: str) -> Fact[T]:
        """No evidence: the reason says which source would answer."""
        return cls(None, reason)


SQL_MISSING = "no SQL source reads AXDB yet"
GATEWAY_MISSING = "no Service Fabric gateway source is available yet"


def reencryption_complete(ctx: Context) -> Fact[bool]:
    """Has the encrypted-data rotation job re-encrypted all data with the new DataEncryption certificate?"""
    return Fact.unknown(f"re-encryption progress is unknown: {SQL_MISSING} (re-encryption job, progress probes)")


def reencryption_enabled(ctx: Context) -> Fact[bool]:
    """Are the flight EnableEncryptedDataCrawlerRotationTask and the key EnableEncryptedDataRotation set?"""
    return Fact.unknown(f"{SQL_MISSING} (SYSFLIGHTING, SECURITYCONFIG)")


def axdb_backed_up(ctx: Context) -> Fact[bool]:
    """Did a full AXDB backup finish after the new certificates were generated?"""
    return Fact.unknown(f"{SQL_MISSING} (msdb.dbo.backupset)")


def sf_upgrade_completed(ctx: Context) -> Fact[bool]:
    """Did the cluster configuration upgrade reach RollingForwardCompleted for the staged configuration?"""
    staged = [config.version for _, config in ctx.snapshot.facts(sf_evidence.FILE_SOURCE, ClusterConfig)]
    answer = sf_evidence.upgrade_completed_evidence(ctx.snapshot, staged[0] if staged else None)
    return Fact(answer.value, answer.detail)


# The application settings the LCS "update settings" step changes, and the role each carries.
LCS_ROLES = ("DataEncryption", "DataSigning", "SessionAuthentication")


def app_settings_applied(ctx: Context) -> Fact[bool]:
    """Does the running AXSF application use the new data encryption, signing and session thumbprints?"""
    if sf_evidence.gateway_facts(ctx.snapshot) is None:
        return Fact.unknown(f"{GATEWAY_MISSING} (application parameters of AXSF)")
    used = sf_evidence.app_thumbprints_by_role(ctx.snapshot)
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
        return Fact(False, f"the running applications still use old certificates: {'; '.join(lagging)}")
    if unknown:
        return Fact.unknown(f"no application parameter carries {', '.join(unknown)}")
    rotated = [role for role in LCS_ROLES if pair.rotated(role)]
    return Fact(True, f"the running applications use the new {', '.join(rotated) or 'certificates'}")


def credentials_rotated(ctx: Context) -> Fact[bool]:
    """Is every Credentials.json value encrypted to the new encipherment certificate?"""
    return Fact.unknown("no Credentials.json source is available yet")


def agent_configs(ctx: Context) -> Iterator[tuple[str, str, AgentConfig]]:
    """(source, target, facts) of every agent configuration: localagent-config.json and the share's config.json."""
    for result in ctx.snapshot:
        facts = result.observation.facts if result.observation is not None else None
        if isinstance(facts, AgentConfig):
            yield result.source, result.target, facts
