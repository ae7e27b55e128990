"""Service Fabric cluster configuration findings.

Hook points for the Service Fabric gateway source (its owner adds the rules here and one
line each in `daemon.rules.RULES`): `sf-version-unsupported-for-rotation` (GetClusterVersion
7.0.x / 7.1.x), `sf-upgrade-stuck` (UpgradeState not moving, RollingBack*, Failed),
`sf-replica-check-timeout-reset` (ReplicaSetCheckTimeout back at 49710.06:28:15).
"""

from __future__ import annotations

from collections.abc import Iterable

from collectors.clusterconfig import SF_ROLE
from collectors.model import Finding, Severity
from daemon.context import Context
from daemon.inventory import Rotation, label, template_pair
from daemon.rotation import checklist, steps_needing
from daemon.rotation.steps import cluster_configs

LINGERING_STEP = "sf-cleaned"


def sf_rotation_complete(ctx: Context) -> bool:
    """True when every step that needs the old Service Fabric certificate, cleanup aside, is done."""
    states = {s.step: s for s in checklist(ctx).steps}
    return all(
        states[step].status.satisfied for step in steps_needing(SF_ROLE) if step != LINGERING_STEP and step in states
    )


def secondary_lingering_findings(ctx: Context) -> Iterable[Finding]:
    """A ThumbprintSecondary that no rotation in progress needs: Service Fabric refuses the next rotation.

    "No rotation needs it" has two forms of evidence: the ConfigTemplate pair does not name it
    as the previous ServiceFabric certificate (left over from an earlier rotation), or it does
    and every step that needs it is done (sf-upgraded included, so this form waits for the
    gateway's upgrade status). Without the ConfigTemplate pair nothing is concluded.
    """
    pair = template_pair(ctx)
    if pair.status == Rotation.UNKNOWN:
        return
    previous = set(pair.retired(SF_ROLE))
    for source, target, cluster in cluster_configs(ctx):
        kinds: dict[str, list[str]] = {}
        for cert in cluster.secondaries():
            kinds.setdefault(cert.thumbprint_secondary, []).append(cert.kind)
        for thumbprint, where in sorted(kinds.items()):
            if pair.in_progress and thumbprint in previous:
                if not sf_rotation_complete(ctx):
                    continue
                why = "the rotation that staged it is otherwise complete"
            else:
                why = "the ConfigTemplate pair does not name it as the previous ServiceFabric certificate"
            yield Finding(
                "sf-secondary-lingering",
                Severity.WARNING,
                f"{target} still has ThumbprintSecondary {label(ctx, thumbprint)} ({', '.join(where)}) and {why}: "
                f"Service Fabric refuses the next rotation (two certificates to two certificates) until it is "
                f"removed from the cluster configuration",
                role=SF_ROLE,
                thumbprint=thumbprint,
                source=source,
                target=target,
                step=LINGERING_STEP,
            )
