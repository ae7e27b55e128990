"""Runbook steps decided by one source's evidence: the SF gateway, SQL and Credentials.json.

Each step first decides what the ConfigTemplate pair can decide (not applicable when its roles
are not rotated, pending while an earlier step it depends on is pending) and otherwise asks its
source's question (`daemon.evidence` or the source's own module), whose "unknown" stays unknown.
Never done without evidence.
"""

from __future__ import annotations

from collections.abc import Callable

from collectors.answers import Evidence
from collectors.credentials import credentials_rotated_evidence
from collectors.sql import reencryption
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
    roles: tuple[str, ...] | None, hook: Callable[[Context], Evidence], after: str = "", doc: str | None = None
) -> Callable[[Context, States], Verdict]:
    def decide(ctx: Context, states: States) -> Verdict:
        verdict = roles_gate(ctx, roles) if roles else gate(ctx)
        if verdict is None and not roles and not template_pair(ctx).rotated_roles():
            verdict = pending("waits for certs-generated: no role rotated yet")
        if verdict is None and after:
            verdict = _after(states, after)
        return verdict if verdict is not None else _from_fact(hook(ctx))

    decide.__doc__ = doc or hook.__doc__
    return decide


sf_upgraded = _hooked(SF_ROLES, evidence.sf_upgrade_completed, after="sf-staged")
credentials_rotated = _hooked(
    ("ServiceFabricEncryption",),
    lambda ctx: credentials_rotated_evidence(ctx.snapshot, ctx.references),
    doc="Is every Credentials.json value encrypted to the new encipherment certificate?",
)
axdb_backed_up = _hooked(None, evidence.axdb_backed_up)
lcs_settings_applied = _hooked(None, evidence.app_settings_applied, after="axdb-backed-up")
reencryption_enabled = _hooked(
    ("DataEncryption",),
    lambda ctx: reencryption.reencryption_enabled_evidence(ctx.snapshot),
    doc="Are the flight EnableEncryptedDataCrawlerRotationTask and the key EnableEncryptedDataRotation set?",
)
reencryption_complete = _hooked(
    ("DataEncryption",),
    lambda ctx: reencryption.reencryption_complete_evidence(ctx.snapshot),
    after="reencryption-enabled",
    doc="Has the encrypted-data rotation job re-encrypted all data with the new DataEncryption certificate?",
)
