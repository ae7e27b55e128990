"""The gate the LocalAgent-side remediations share: the running cluster uses the certificates they point at.

`localagent-config-update` and `deployment-config-update` both write the cluster's new server and
client thumbprints into the agent's configuration. Pointed at certificates the cluster does not
use yet, the LocalAgent loses the cluster; so both need the same evidence: the gateway's view of
the running configuration, with the configuration upgrade completed for the staged version.
Missing evidence is never healthy. Without a gateway source the gate fails, naming what is
missing, unless the operator passes `--without-cluster-evidence` or sets
`rules.agent_updates_without_cluster_evidence` (both off by default; the check then passes with
"OVERRIDDEN" in its detail, and the check list is part of the audited result).
"""

from __future__ import annotations

from collectors.clusterconfig import ClusterConfig
from collectors.servicefabric.evidence import FILE_SOURCE, upgrade_completed_evidence
from collectors.servicefabric.evidence import SOURCE as GATEWAY_SOURCE
from remediations.base import Check, RemediationContext

#: ctx.options key: the operator's explicit override of the missing-gateway refusal
OVERRIDE_OPTION = "without_cluster_evidence"
NAME = "cluster configuration upgrade completed"
CONSEQUENCE = "the LocalAgent would lose the cluster if pointed at certificates the cluster does not use yet"


def staged_version(ctx: RemediationContext) -> str | None:
    """The staged ClusterConfig.json's version, when the file source read it."""
    return next((c.version for _, c in ctx.snapshot.facts(FILE_SOURCE, ClusterConfig)), None)


def cluster_runs_target_check(ctx: RemediationContext) -> Check:
    """The running cluster completed the configuration upgrade to the staged version (gateway evidence)."""
    if not ctx.snapshot.has_source(GATEWAY_SOURCE):
        missing = (
            "the running cluster's state is unknown: no Service Fabric gateway source (sources.servicefabric) is "
            "configured, so certmon cannot see whether the configuration upgrade completed"
        )
        if ctx.options.get(OVERRIDE_OPTION) is True:
            how = "--without-cluster-evidence or rules.agent_updates_without_cluster_evidence"
            return Check(NAME, True, f"OVERRIDDEN by the operator ({how}): {missing}")
        return Check(
            NAME,
            False,
            f"{missing}; {CONSEQUENCE}. Configure the gateway, or confirm the upgrade yourself "
            "(Get-ServiceFabricClusterConfigurationUpgradeStatus) and pass --without-cluster-evidence",
        )
    evidence = upgrade_completed_evidence(ctx.snapshot, staged_version(ctx))
    detail = evidence.detail if evidence.true else f"{evidence.detail}; {CONSEQUENCE}"
    return Check(NAME, evidence.true, detail)
