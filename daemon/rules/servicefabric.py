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
    """True when every step before the final clean-up is done.

    The runbook keeps the previous certificate as ThumbprintSecondary until its last step, and the
    checklist orders sf-cleaned after re-encryption: a rotation whose Service Fabric steps are
    done but whose re-encryption still runs still needs it (issue 16, gate 5).
    """
    steps = list(checklist(ctx).steps)
    names = [s.step for s in steps]
    before = names[: names.index(LINGERING_STEP)] if LINGERING_STEP in names else names
    needed = set(before) | {step for step in steps_needing(SF_ROLE) if step != LINGERING_STEP}
    return all(s.status.satisfied for s in steps if s.step in needed)


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
