"""localagent-config-update: point localagent-config.json at the cluster's new certificates.

The runbook step `localagent-updated`: `serviceFabric.certificateSettings.serverCertThumbprint`
and `clientCertThumbprint` must name the cluster's current server certificate and admin
client certificate (from the cluster configuration, or from the new ConfigTemplate.xml when
no cluster data is available). The wanted values and the drift come from
`collectors.agentconfig.agent_target` / `agent_drift`, the same functions the evaluator's
`agent-config-thumbprint-stale` finding uses. Only the two values' bytes change; the file's
CRLF line endings, BOM, indentation and every other section stay as they are.

The LocalAgent only reads its configuration when installed, so the plan tells the operator
to run `LocalAgentCLI.exe Cleanup` and reinstall it afterwards. The cluster must also run the
configuration the thumbprints come from (its upgrade completed, seen through the gateway):
`remediations.sfgates`, shared with deployment-config-update.
"""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

from collectors.agentconfig import (
    SETTING_ROLES,
    AgentTarget,
    agent_drift,
    agent_target,
    load_agent_config,
    parse_agent_config,
)
from collectors.errors import CollectorError
from collectors.files import parse_json, read_bytes
from collectors.model import CertObservation
from remediations.base import Check, Remediation, RemediationContext, RemediationError, VerificationError
from remediations.jsonedit import JsonEditor, parse_path
from remediations.plan import FileChange, Plan, ValueChange
from remediations.sfgates import cluster_runs_target_check

SOURCE = "localagent"


def _certificate_problem(role: str, thumbprint: str, seen: list[CertObservation], now: datetime) -> str:
    label = f"{role} certificate {thumbprint}"
    if not seen:
        return f"{label} is not in the inventory of any node"
    cert = seen[0].certificate
    if cert.not_after <= now:
        return f"{label} expired on {cert.not_after:%Y-%m-%d}"
    if cert.not_before > now:
        return f"{label} is not valid before {cert.not_before:%Y-%m-%d %H:%M}Z"
    return ""


def _certificate_found(role: str, thumbprint: str, seen: list[CertObservation]) -> str:
    nodes = sorted({o.node for o in seen})
    keyed = sorted({o.node for o in seen if o.has_private_key})
    return f"{role} {thumbprint} on {len(nodes)} node(s), with private key on {len(keyed)}"


def new_certificates_check(ctx: RemediationContext, target: AgentTarget) -> Check:
    """The cluster's server and client certificates are in the inventory and valid now."""
    name = "new certificates in the inventory"
    observations = list(ctx.snapshot.certificates())
    if not observations:
        return Check(name, False, "no certificate inventory: no source reads the nodes' certificate stores")
    problems, found = [], []
    for setting, role in SETTING_ROLES:
        thumbprint = target.thumbprint(setting)
        seen = [o for o in observations if o.thumbprint == thumbprint]
        problem = _certificate_problem(role, thumbprint, seen, ctx.now)
        if problem:
            problems.append(problem)
        else:
            found.append(_certificate_found(role, thumbprint, seen))
    return Check(name, not problems, "; ".join(problems or found))


def verify_agent_files(plan: Plan) -> None:
    """Every written file parses as an agent configuration and carries the planned thumbprints."""
    for change in plan.files():
        try:
            config = load_agent_config(change.path)
        except CollectorError as err:
            raise VerificationError(f"after the write: {err}") from err
        for value in change.values:
            if config.thumbprint(value.setting) != value.after:
                raise VerificationError(
                    f"{change.path}: {value.setting} reads {config.thumbprint(value.setting)!r} "
                    f"after the write, expected {value.after}"
                )


def follow_up_steps(path: Path) -> tuple[str, ...]:
    """What the operator does after the file is updated."""
    return (
        f'On the machine where the local agent is installed, run `.\\LocalAgentCLI.exe Cleanup "{path}"`.',
        f'Reinstall the local agent with the updated file: `.\\LocalAgentCLI.exe Install "{path}"`.',
    )


class LocalAgentConfigUpdate(Remediation):
    """Set localagent-config.json's server and client thumbprints to the cluster's new ones."""

    name = "localagent-config-update"
    description = "Set the server and client certificate thumbprints in localagent-config.json to the cluster's."
    step = "localagent-updated"
    sources = (SOURCE,)

    def preconditions(self, ctx: RemediationContext) -> list[Check]:
        """File configured and collected, cluster thumbprints known, new certificates in the inventory."""
        path = ctx.file(SOURCE)
        checks = [
            Check(
                "localagent-config.json configured",
                path is not None,
                str(path) if path is not None else "sources.localagent.path is not set",
            )
        ]
        results = ctx.snapshot.of_source(SOURCE)
        failing = [r for r in results if not r.health.ok]
        if not results:
            checks.append(Check("localagent-config.json collected", False, "the localagent source was not collected"))
        else:
            detail = "; ".join(f"{r.target}: {r.health.reason}: {r.health.message}" for r in failing)
            checks.append(Check("localagent-config.json collected", not failing, detail or "read and parsed"))
        target = agent_target(ctx.snapshot)
        known = f"server {target.server}, client {target.client} (from {target.basis})"
        checks.append(Check("cluster thumbprints known", target.known, known if target.known else target.problem))
        if target.known:
            checks.append(self._inventory_check(ctx, target))
        checks.append(cluster_runs_target_check(ctx))
        return checks

    def _inventory_check(self, ctx: RemediationContext, target: AgentTarget) -> Check:
        return new_certificates_check(ctx, target)

    def plan(self, ctx: RemediationContext) -> Plan:
        """Read the file now and edit only the thumbprint values that differ."""
        path = ctx.file(SOURCE)
        if path is None:
            raise RemediationError("sources.localagent.path is not set")
        target = agent_target(ctx.snapshot)
        if not target.known:
            raise RemediationError(target.problem)
        try:
            data = read_bytes(path)
            config = parse_agent_config(parse_json(data, str(path)), str(path))
        except CollectorError as err:
            raise RemediationError(f"cannot read {err}") from err
        editor = JsonEditor(data, str(path))
        values = []
        for setting, current, wanted in agent_drift(config, target):
            editor.set(parse_path(setting), wanted)
            values.append(ValueChange(setting, current, wanted))
        if not values:
            return Plan(self.name, (), reason=f"{path.name} already carries the cluster's thumbprints ({target.basis})")
        change = FileChange(path, data, editor.to_bytes(), tuple(values))
        return Plan(self.name, (change,), follow_up=follow_up_steps(path))

    def verify(self, ctx: RemediationContext, plan: Plan) -> None:
        """The file parses as an agent configuration and carries the new thumbprints."""
        verify_agent_files(plan)
