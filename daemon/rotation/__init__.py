"""The rotation tracker: the runbook steps of DESIGN section 2, each decided from evidence.

`STEPS` is the checklist in runbook order: `steps` decides the steps read from files and node
stores, `evidencesteps` those one source's evidence decides, `removal` old-certs-removable.
"""

from __future__ import annotations

from daemon.context import Context
from daemon.rotation import steps
from daemon.rotation.evidencesteps import (
    axdb_backed_up,
    credentials_rotated,
    lcs_settings_applied,
    reencryption_complete,
    reencryption_enabled,
    sf_upgraded,
)
from daemon.rotation.model import Checklist, OldCertificate, Step, StepState, StepStatus, Verdict
from daemon.rotation.removal import old_certificates, old_certs_removable, steps_needing

# The checklist in runbook order: (id, title in the runbook's words, decide function).
STEPS: list[Step] = [
    Step(*entry)
    for entry in (
        ("scripts-updated", "Scripts updated (Infrastructure and InfrastructureOld)", steps.scripts_updated),
        ("certs-generated", "New certificates generated (new ConfigTemplate.xml thumbprints)", steps.certs_generated),
        ("certs-installed", "New certificates on every node that needs them, with keys", steps.certs_installed),
        ("sf-staged", "Cluster config staged (new primary, old secondary, new admin client)", steps.sf_staged),
        ("sf-upgraded", "Cluster configuration upgrade completed", sf_upgraded),
        ("localagent-updated", "localagent-config.json uses the new thumbprints", steps.localagent_updated),
        ("deployment-config-updated", "Agent share config.json uses the new ones", steps.deployment_config_updated),
        ("credentials-rotated", "Credentials.json encrypted to the new encipherment cert", credentials_rotated),
        ("axdb-backed-up", "AXDB full backup taken", axdb_backed_up),
        ("lcs-settings-applied", "Deployment settings applied (AXSF uses the new certs)", lcs_settings_applied),
        ("reencryption-enabled", "Encrypted data rotation enabled (flight and key)", reencryption_enabled),
        ("reencryption-complete", "Encrypted data re-encrypted with the new certificate", reencryption_complete),
        ("sql-adfs-checked", "SQL Server and AD FS certificates outside their warning windows", steps.sql_adfs_checked),
        ("sf-cleaned", "Old thumbprints removed from the cluster configuration", steps.sf_cleaned),
        ("old-certs-removable", "Old certificates safe to delete", old_certs_removable),
    )
]


def track(ctx: Context, checklist_steps: list[Step] | None = None) -> Checklist:
    """Decide every step in order, then which old certificates are safe to remove."""
    states: dict[str, StepState] = {}
    for step in checklist_steps if checklist_steps is not None else STEPS:
        verdict = step.decide(ctx, states)
        states[step.id] = StepState(step.id, step.title, verdict.status, verdict.detail, verdict.evidence)
    return Checklist(tuple(states.values()), tuple(old_certificates(ctx, states)))


_CHECKLIST = "daemon.rotation.checklist"


def checklist(ctx: Context, checklist_steps: list[Step] | None = None) -> Checklist:
    """The checklist of a context, decided once: the evaluator and the rules that need steps share it."""
    found = ctx.memo.get(_CHECKLIST)
    if not isinstance(found, Checklist):
        found = ctx.memo[_CHECKLIST] = track(ctx, checklist_steps)
    return found


__all__ = [
    "STEPS",
    "Checklist",
    "OldCertificate",
    "Step",
    "StepState",
    "StepStatus",
    "Verdict",
    "checklist",
    "steps_needing",
    "track",
]
