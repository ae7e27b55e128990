"""Runbook steps whose deciding evidence comes from sources still being built (see daemon.evidence).

Each step first decides what today's evidence can decide (not applicable when its roles are
not rotated, pending while an earlier step it depends on is pending) and otherwise asks its
hook in `daemon.evidence`, which answers unknown until the source lands. Never done without
evidence.
"""

from __future__ import annotations

from collections.abc import Callable

from collectors.answers import Evidence
from daemon import evidence
from daemon.context import Context
from daemon.inventory import template_pair
from daemon.rotation.model import StepStatus, Verdict, done, pending, unknown
from daemon.rotation.steps import SF_ROLES, States, gate, roles_gate


def _from_fact(fact: Evidence) -> Verdict:
    if fact.value is None:
        return unknown(fact.detail)
    return done(fact.detail) if fact.value else pending(fact.detail)


def _after(states: States, step: str) -> Verdict | None:
    state = states.get(step)
    if state is not None and state.status is StepStatus.PENDING:
        return pending(f"waits for {step}: {state.detail}")
    return None


def _hooked(
    roles: tuple[str, ...] | None, hook: Callable[[Context], Evidence], after: str = ""
) -> Callable[[Context, States], Verdict]:
    def decide(ctx: Context, states: States) -> Verdict:
        verdict = roles_gate(ctx, roles) if roles else gate(ctx)
        if verdict is None and not roles and not template_pair(ctx).rotated_roles():
            verdict = pending("waits for certs-generated: no role rotated yet")
        if verdict is None and after:
            verdict = _after(states, after)
        return verdict if verdict is not None else _from_fact(hook(ctx))

    decide.__doc__ = hook.__doc__
    return decide


sf_upgraded = _hooked(SF_ROLES, evidence.sf_upgrade_completed, after="sf-staged")
credentials_rotated = _hooked(("ServiceFabricEncryption",), evidence.credentials_rotated)
axdb_backed_up = _hooked(None, evidence.axdb_backed_up)
lcs_settings_applied = _hooked(None, evidence.app_settings_applied, after="axdb-backed-up")
reencryption_enabled = _hooked(("DataEncryption",), evidence.reencryption_enabled)
reencryption_complete = _hooked(("DataEncryption",), evidence.reencryption_complete, after="reencryption-enabled")
