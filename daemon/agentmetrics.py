"""Metrics that need the whole evaluation, not one source's facts: Credentials.json recipients, agent config match."""

from __future__ import annotations

from typing import TYPE_CHECKING

from collectors.agentconfig import SETTING_ROLES, AgentConfig, agent_target
from collectors.agentshare import SOURCE as SHARE_SOURCE
from collectors.credentials import CredentialsFacts, encipherment_generations, recipient_index, value_encryptions

if TYPE_CHECKING:
    from daemon.evaluator import Evaluation
    from daemon.families import Families


def agent_families(evaluation: Evaluation, out: Families) -> None:
    """certmon_credentials_encrypted_to_info and certmon_agent_config_thumbprint_match."""
    snapshot = evaluation.snapshot
    env = snapshot.environment
    found = snapshot.facts("credentials", CredentialsFacts)
    if found:
        recipients = out.gauge(
            "certmon_credentials_encrypted_to_info",
            "1 for each certificate a Credentials.json value is encrypted to: the new or old encipherment "
            "certificate, or unknown (thumbprint empty when the certificate is not in the inventory).",
            ("environment", "key", "generation", "thumbprint"),
        )
        generations = encipherment_generations(evaluation.references)
        index = recipient_index(snapshot)
        for _, facts in found:
            for item in value_encryptions(facts, index, generations):
                out.add(recipients, (env, item.key, item.generation, item.thumbprint), 1.0)
    files = [*snapshot.facts("localagent", AgentConfig), *snapshot.facts(SHARE_SOURCE, AgentConfig)]
    wanted = agent_target(snapshot) if files else None
    if wanted is None or not wanted.known:
        return
    match = out.gauge(
        "certmon_agent_config_thumbprint_match",
        "1 when an agent configuration's thumbprint setting equals the cluster's current one, 0 when it differs.",
        ("environment", "file", "setting"),
    )
    for name, config in files:
        for setting, _role in SETTING_ROLES:
            same = config.thumbprint(setting) == wanted.thumbprint(setting)
            out.add(match, (env, name, setting), 1.0 if same else 0.0)
