"""deployment-config-update: point the agent share's config.json at the cluster's new certificates.

The runbook step `deployment-config-updated` (needed for local agent 3.2.2 and older): the
deployment's config.json on the agent share, located through OrchestratorData's
DeploymentInstanceArtifact, must carry the cluster's current server and client thumbprints,
or the environment's clean-up job fails. The wanted values come from
`collectors.agentconfig.agent_target`, as for localagent-config.json; every path is resolved
again inside the configured share at planning time, and the edit is the framework's
byte-preserving, backed-up and audited one.
"""

from __future__ import annotations

from pathlib import Path

from collectors.agentconfig import AgentConfig, agent_drift, agent_target, parse_agent_config
from collectors.agentshare import SOURCE, AgentShare
from collectors.errors import CollectorError
from collectors.files import parse_json, read_bytes
from remediations.base import Check, Remediation, RemediationContext, RemediationError
from remediations.jsonedit import JsonEditor, parse_path
from remediations.localagent import new_certificates_check, verify_agent_files
from remediations.plan import FileChange, Plan, ValueChange
from remediations.sfgates import cluster_runs_target_check

#: ctx.options key: the configured collectors.agentshare.AgentShare
AGENT_SHARE_OPTION = "agent_share"


def configured_share(ctx: RemediationContext) -> AgentShare:
    """The agent share from the configuration."""
    share = ctx.options.get(AGENT_SHARE_OPTION)
    if not isinstance(share, AgentShare):
        raise RemediationError("sources.agentshare.path is not set")
    return share


def share_files(ctx: RemediationContext) -> list[str]:
    """The config.json files the latest collection read (their paths inside the share)."""
    return [config.path for _, config in ctx.snapshot.facts(SOURCE, AgentConfig)]


class DeploymentConfigUpdate(Remediation):
    """Set the agent share config.json's server and client thumbprints to the cluster's."""

    name = "deployment-config-update"
    description = "Set the server and client certificate thumbprints in the agent share's config.json to the cluster's."
    step = "deployment-config-updated"
    sources = (SOURCE,)

    def preconditions(self, ctx: RemediationContext) -> list[Check]:
        """Share configured and collected, cluster thumbprints known, new certificates in the inventory."""
        try:
            share = configured_share(ctx)
            checks = [Check("agent share configured", True, share.unc_prefix or str(share.root))]
        except RemediationError as err:
            return [Check("agent share configured", False, str(err))]
        results = ctx.snapshot.of_source(SOURCE)
        failing = "; ".join(f"{r.target}: {r.health.reason}: {r.health.message}" for r in results if not r.health.ok)
        locations = share_files(ctx)
        collected = bool(results) and not failing and bool(locations)
        detail = failing or (", ".join(locations) if locations else "the agentshare source was not collected")
        checks.append(Check("config.json located and read", collected, detail))
        target = agent_target(ctx.snapshot)
        known = f"server {target.server}, client {target.client} (from {target.basis})"
        checks.append(Check("cluster thumbprints known", target.known, known if target.known else target.problem))
        if target.known:
            checks.append(new_certificates_check(ctx, target))
        checks.append(cluster_runs_target_check(ctx))
        return checks

    def plan(self, ctx: RemediationContext) -> Plan:
        """Resolve each location inside the share again, read it now, and edit only the values that differ."""
        share = configured_share(ctx)
        target = agent_target(ctx.snapshot)
        if not target.known:
            raise RemediationError(target.problem)
        changes = []
        for location in share_files(ctx):
            try:
                path = share.resolve(location)
                data = read_bytes(path)
                config = parse_agent_config(parse_json(data, str(path)), str(path))
            except CollectorError as err:
                raise RemediationError(f"cannot read {err}") from err
            editor = JsonEditor(data, str(path))
            values = []
            for setting, current, wanted in agent_drift(config, target):
                editor.set(parse_path(setting), wanted)
                values.append(ValueChange(setting, current, wanted))
            if values:
                changes.append(FileChange(path, data, editor.to_bytes(), tuple(values)))
        if not changes:
            return Plan(self.name, (), reason=f"config.json already carries the cluster's thumbprints ({target.basis})")
        return Plan(self.name, tuple(changes), follow_up=follow_up_steps([c.path for c in changes]))

    def verify(self, ctx: RemediationContext, plan: Plan) -> None:
        """Every file parses as an agent configuration and carries the new thumbprints."""
        verify_agent_files(plan)


def follow_up_steps(paths: list[Path]) -> tuple[str, ...]:
    """What the operator does after the files are updated."""
    names = ", ".join(str(p) for p in paths)
    return (
        f"Close every program that has {names} open on the share; the clean-up job fails while it is in use.",
        "Continue with the Credentials.json rotation (credentials-json-rotate) if the encipherment certificate "
        "was rotated too.",
    )
