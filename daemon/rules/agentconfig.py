"""Agent configurations (localagent-config.json, the share's config.json) behind the cluster's certificates."""

from __future__ import annotations

from collections.abc import Iterable

from collectors.agentconfig import SETTING_ROLES, agent_drift, agent_target
from collectors.agentshare import SOURCE as SHARE_SOURCE
from collectors.model import Finding, Severity
from daemon.context import Context
from daemon.evidence import LOCALAGENT_SOURCE, agent_configs

# Per agent-configuration source: the runbook step it serves and the remediation that fixes it.
# The agent share's config.json source adds its line here (step deployment-config-updated,
# remediation deployment-config-update) when it lands.
AGENT_CONFIG_STEPS: dict[str, tuple[str, str]] = {
    LOCALAGENT_SOURCE: ("localagent-updated", "localagent-config-update"),
    SHARE_SOURCE: ("deployment-config-updated", "deployment-config-update"),
}
SHARE_CONFIG_STEP = ("deployment-config-updated", "")


def agent_config_findings(ctx: Context) -> Iterable[Finding]:
    """Agent configuration thumbprints that differ from the cluster's current server and admin client ones."""
    target = agent_target(ctx.snapshot)
    roles = dict(SETTING_ROLES)
    for source, file_target, config in agent_configs(ctx):
        step, remediation = AGENT_CONFIG_STEPS.get(source, SHARE_CONFIG_STEP)
        for setting, current, wanted in agent_drift(config, target):
            yield Finding(
                "agent-config-thumbprint-stale",
                Severity.WARNING,
                f"{file_target} {setting.rsplit('.', 1)[1]} is {current or '(empty)'} but the cluster uses "
                f"{wanted} ({target.basis}); the LocalAgent loses the cluster once the old certificate is removed",
                role=roles[setting],
                thumbprint=current,
                source=source,
                target=file_target,
                step=step,
                remediation=remediation,
            )
