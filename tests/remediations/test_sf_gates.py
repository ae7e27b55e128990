"""The gate the LocalAgent-side remediations share (issue 16, gates 1 and 2).

deployment-config-update used to be offered at `staged`, before the cluster's configuration
upgrade completed, while localagent-config-update was refused for exactly that reason; and
without a gateway source localagent-config-update applied from the staged file alone. Both now
need the running cluster's evidence (or the operator's explicit, audited override).
"""

from __future__ import annotations

import dataclasses
from datetime import datetime

from remediations.deploymentconfig import DeploymentConfigUpdate
from remediations.localagent import LocalAgentConfigUpdate
from remediations.outcome import Outcome
from remediations.servicefabric import StageRotation
from remediations.sfgates import NAME, OVERRIDE_OPTION
from tests.sfkit import SfLab, remediating

GATED = (DeploymentConfigUpdate(), LocalAgentConfigUpdate())


def test_both_agent_updates_wait_for_the_configuration_upgrade(sf: SfLab, now: datetime) -> None:
    run = remediating(sf, now)
    try:
        gates = {r.name: next(c for c in r.preconditions(run.ctx) if c.name == NAME) for r in GATED}
        offered = {r.name: run.engine.assess(r, run.ctx).applies for r in GATED}
        refused = run.engine.apply(DeploymentConfigUpdate(), run.ctx)
    finally:
        run.close()
    assert offered == {"deployment-config-update": False, "localagent-config-update": False}
    assert gates["deployment-config-update"] == gates["localagent-config-update"]
    assert not gates["deployment-config-update"].ok
    assert "the cluster runs configuration 2.0.0, not 2.0.1" in gates["deployment-config-update"].detail
    assert refused.outcome is Outcome.REFUSED
    assert f"precondition failed: {NAME}: the cluster runs configuration 2.0.0" in refused.message


def test_the_gate_opens_once_the_cluster_runs_the_staged_configuration(sf: SfLab, now: datetime) -> None:
    run = remediating(sf, now)
    try:
        assert run.engine.apply(StageRotation(), run.ctx).outcome is Outcome.APPLIED
    finally:
        run.close()
    sf.finish_upgrade()
    later = remediating(sf, now)
    try:
        gates = [next(c for c in r.preconditions(later.ctx) if c.name == NAME) for r in GATED]
    finally:
        later.close()
    assert all(g.ok for g in gates), gates
    assert gates[0].detail == "the configuration upgrade to configuration 2.0.1 completed (RollingForwardCompleted)"


def test_without_a_gateway_both_refuse_and_the_override_is_explicit(sf: SfLab, now: datetime) -> None:
    settings = sf.settings()
    settings.sources.servicefabric.enabled = False
    run = remediating(sf, now, settings=settings)
    try:
        plain = [next(c for c in r.preconditions(run.ctx) if c.name == NAME) for r in GATED]
        ctx = dataclasses.replace(run.ctx, options={**run.ctx.options, OVERRIDE_OPTION: True})
        overridden = [next(c for c in r.preconditions(ctx) if c.name == NAME) for r in GATED]
    finally:
        run.close()
    assert not any(g.ok for g in plain)
    assert all(
        "no Service Fabric gateway source" in g.detail and "--without-cluster-evidence" in g.detail for g in plain
    )
    assert all(g.ok and g.detail.startswith("OVERRIDDEN by the operator") for g in overridden)
