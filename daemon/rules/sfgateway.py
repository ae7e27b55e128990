"""Findings from the Service Fabric gateway: version, upgrade state, replica-set check, applications' certificates.

Rules (pure functions of the evaluator's Context, registered in `daemon.rules.RULES`):

* `sf-version-unsupported-for-rotation`: Service Fabric 7.0.x / 7.1.x cannot rotate certificates
  (critical while a rotation is pending, warning otherwise);
* `sf-upgrade-stuck`: the configuration upgrade rolled back, failed, or has spent longer than
  `upgrade_stuck_after_minutes` on one upgrade domain;
* `sf-replica-check-timeout-reset`: an upgrade runs with the replica-set check timeout back at
  49710.06:28:15 (remediation `sf-replica-check-timeout`);
* `old-cert-removed-early`: a certificate the running applications' parameters still name was
  removed from a node where certmon had seen it.

Every decision comes from `collectors.servicefabric.evidence`, which the SF remediations'
preconditions call too.
"""

from __future__ import annotations

from collections.abc import Iterable

from collectors.model import Finding, Generation, Severity
from collectors.servicefabric.api import format_timespan
from collectors.servicefabric.evidence import (
    SOURCE,
    app_certificates,
    gateway_result,
    replica_timeout_reset,
    rotation_supported,
    sf_rotation,
    single_node_types,
    stuck_reason,
)
from collectors.servicefabric.model import GatewayFacts
from daemon.context import Context

# Sources that read the nodes' certificate stores, whose history says "was there, is gone".
NODE_STORE_SOURCES = ("winrm", "certfolder")


def _gateway(ctx: Context) -> tuple[str, GatewayFacts] | None:
    result = gateway_result(ctx.snapshot)
    if result is None or result.observation is None or not isinstance(result.observation.facts, GatewayFacts):
        return None
    return result.target, result.observation.facts


def version_findings(ctx: Context) -> Iterable[Finding]:
    """Service Fabric 7.0.x or 7.1.x: rotation is not supported; upgrade the cluster first."""
    found = _gateway(ctx)
    if found is None:
        return
    target, facts = found
    if rotation_supported(facts.code_version) is not False:
        return
    rotation = sf_rotation(ctx.snapshot, facts.config)
    pending = bool(rotation.new_server) and any(c.thumbprint != rotation.new_server for c in facts.config.certificates)
    yield Finding(
        "sf-version-unsupported-for-rotation",
        Severity.CRITICAL if pending else Severity.WARNING,
        f"{target} runs Service Fabric {facts.code_version}: certificate rotation is not supported on 7.0.x and "
        "7.1.x; upgrade the cluster to 7.2 or later before staging new certificates"
        + (f" (the new {rotation.new_server} is waiting to be staged)" if pending else ""),
        role="ServiceFabric",
        source=SOURCE,
        target=target,
        step="sf-staged",
    )


def stuck_findings(ctx: Context) -> Iterable[Finding]:
    """A configuration upgrade that rolled back, failed, or sits on one upgrade domain too long."""
    found = _gateway(ctx)
    if found is None:
        return
    target, facts = found
    limit = ctx.settings.sources.servicefabric.upgrade_stuck_after_minutes * 60
    reason = stuck_reason(facts, limit)
    if not reason:
        return
    reset = replica_timeout_reset(facts)
    hint = (
        "; the replica-set check timeout is at 49710.06:28:15: run sf-replica-check-timeout"
        if reset
        else "; see Get-ServiceFabricClusterUpgrade and the cluster's health"
    )
    yield Finding(
        "sf-upgrade-stuck",
        Severity.CRITICAL,
        f"{target}: {reason}{hint}",
        role="ServiceFabric",
        source=SOURCE,
        target=target,
        step="sf-upgraded",
        remediation="sf-replica-check-timeout" if reset else "",
    )


def replica_timeout_findings(ctx: Context) -> Iterable[Finding]:
    """An upgrade running with the replica-set check timeout reset to its 49710-day default."""
    found = _gateway(ctx)
    if found is None:
        return
    target, facts = found
    if not replica_timeout_reset(facts) or facts.upgrade_progress is None:
        return
    timeout = facts.upgrade_progress.replica_set_check_timeout_seconds or 0
    single = single_node_types(facts.config)
    waiting = (
        f"node types with a single node ({', '.join(single)}) hold the upgrade on it"
        if single
        else "a node whose replicas cannot move holds the upgrade on it"
    )
    yield Finding(
        "sf-replica-check-timeout-reset",
        Severity.WARNING,
        f"{target}: the running upgrade's replica-set check timeout is back at {format_timespan(timeout)}; "
        f"{waiting}; set it to 30 s",
        role="ServiceFabric",
        source=SOURCE,
        target=target,
        step="sf-upgraded",
        remediation="sf-replica-check-timeout",
    )


def app_cert_removed_findings(ctx: Context) -> Iterable[Finding]:
    """A certificate the running applications still use, removed from a node where it had been seen."""
    apps = app_certificates(ctx.snapshot)
    if not apps:
        return
    held = {(o.node.upper(), o.thumbprint) for o in ctx.snapshot.certificates()}
    old = {r.thumbprint for r in ctx.references if r.generation is Generation.OLD}
    for app in apps:
        for entry in ctx.history.removals(app.thumbprint, NODE_STORE_SOURCES):
            if (entry.node.upper(), app.thumbprint) in held:
                continue
            generation = "previous " if app.thumbprint in old else ""
            gone = f", gone since {entry.last_absent:%Y-%m-%d %H:%M}Z" if entry.last_absent else ""
            yield Finding(
                "old-cert-removed-early",
                Severity.CRITICAL,
                f"{app.application} still uses the {generation}{app.role} certificate {app.thumbprint} "
                f"(parameter {app.parameter}) but it was removed from {entry.node} "
                f"(seen there until {entry.last_seen:%Y-%m-%d %H:%M}Z{gone}); put it back until the application "
                "runs on the new certificate",
                role=app.role,
                thumbprint=app.thumbprint,
                node=entry.node,
                source=SOURCE,
                target=app.application,
                step="lcs-settings-applied",
            )
