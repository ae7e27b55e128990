"""The rule catalogue: every finding certmon raises, as pure functions of a Context.

Adding a rule = one module in this package (a function `Context -> Iterable[Finding]`), one
line in `RULES`, one entry in `CATALOGUE`, and a scenario test that triggers it next to a
healthy neighbour that does not. A rule that lacks its evidence (source not configured, not
read yet) yields nothing: the rotation checklist says "unknown" for it, never "healthy".
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from collectors.model import Finding, Severity
from daemon.context import Context
from daemon.rules.agentconfig import agent_config_findings
from daemon.rules.consistency import node_consistency_findings, reference_consistency_findings, self_signed_findings
from daemon.rules.expiry import expiry_findings
from daemon.rules.health import source_down_findings, source_problems_findings
from daemon.rules.keyacl import key_acl_findings
from daemon.rules.presence import cng_key_findings, missing_on_node_findings, private_key_findings
from daemon.rules.reencryption import (
    credentials_on_old_cert,
    reencryption_eta_after_expiry,
    reencryption_not_enabled,
    reencryption_stalled,
)
from daemon.rules.removal import data_encryption_removed_findings, old_cert_removed_findings
from daemon.rules.servicefabric import secondary_lingering_findings
from daemon.rules.sfgateway import (
    app_cert_removed_findings,
    replica_timeout_findings,
    stuck_findings,
    version_findings,
)
from daemon.rules.statestore import state_store_findings
from daemon.rules.template import schema_changed_findings
from daemon.rules.tls import endpoint_consistency_findings, tls_chain_findings, tls_probe_failed_findings

Rule = Callable[[Context], Iterable[Finding]]

RULES: list[Rule] = [
    expiry_findings,
    source_down_findings,
    source_problems_findings,
    missing_on_node_findings,
    private_key_findings,
    cng_key_findings,
    key_acl_findings,
    data_encryption_removed_findings,
    old_cert_removed_findings,
    secondary_lingering_findings,
    version_findings,
    stuck_findings,
    replica_timeout_findings,
    app_cert_removed_findings,
    agent_config_findings,
    reencryption_not_enabled,
    reencryption_stalled,
    reencryption_eta_after_expiry,
    credentials_on_old_cert,
    schema_changed_findings,
    node_consistency_findings,
    reference_consistency_findings,
    self_signed_findings,
    endpoint_consistency_findings,
    tls_chain_findings,
    tls_probe_failed_findings,
    state_store_findings,
]


@dataclass(frozen=True)
class RuleInfo:
    """One finding of the catalogue: its highest severity, the step that fixes it, what it means."""

    id: str
    severity: Severity
    step: str
    summary: str
    #: the remediation that fixes the finding, for rules that do not name one themselves
    remediation: str = ""


C, W = Severity.CRITICAL, Severity.WARNING

CATALOGUE: tuple[RuleInfo, ...] = (
    RuleInfo("cert-expired", C, "certs-generated", "a certificate is past its notAfter"),
    RuleInfo("cert-expiry-critical", C, "certs-generated", "inside the role's critical window"),
    RuleInfo("cert-expiry-warning", W, "certs-generated", "inside the role's warning window"),
    RuleInfo("cert-not-yet-valid", W, "certs-generated", "notBefore is in the future"),
    RuleInfo("source-down", W, "", "a source target's latest collection failed"),
    RuleInfo("source-problems", W, "", "a source read only part of its input (wrong password, bad file)"),
    RuleInfo("cert-missing-on-node", C, "certs-installed", "a node lacks a certificate its purpose needs"),
    RuleInfo("private-key-missing", C, "certs-installed", "a node holds a needed certificate without its key"),
    RuleInfo("cng-key-on-sf-cert", C, "certs-installed", "a Service Fabric/AXSF certificate has a CNG key"),
    RuleInfo(
        "private-key-acl-missing",
        C,
        "certs-installed",
        "a service account (gMSA, NETWORK SERVICE) cannot read a needed certificate's private key",
    ),
    RuleInfo(
        "private-key-acl-unverified",
        W,
        "certs-installed",
        "a service account could read a needed private key only through a group certmon cannot expand",
    ),
    RuleInfo(
        "data-encryption-old-cert-removed-early",
        C,
        "reencryption-complete",
        "the previous DataEncryption certificate left a node before re-encryption finished",
    ),
    RuleInfo("old-cert-removed-early", C, "sf-cleaned", "a previous certificate still named somewhere left a node"),
    RuleInfo(
        "sf-secondary-lingering",
        W,
        "sf-cleaned",
        "a ThumbprintSecondary blocks the next rotation",
        remediation="sf-cleanup-old-certs",
    ),
    RuleInfo(
        "agent-config-thumbprint-stale", W, "localagent-updated", "an agent configuration lags the cluster's certs"
    ),
    RuleInfo("config-template-schema-changed", W, "scripts-updated", "a new ConfigTemplate.xml schema, not migrated"),
    RuleInfo("cert-inconsistent-across-nodes", W, "certs-installed", "one role, different certificates per node"),
    RuleInfo("self-signed-in-production", W, "certs-generated", "a self-signed certificate where a CA is needed"),
    RuleInfo(
        "reencryption-eta-after-old-cert-expiry",
        C,
        "reencryption-complete",
        "re-encryption will finish after the old DataEncryption certificate expires",
    ),
    RuleInfo(
        "reencryption-not-enabled",
        W,
        "reencryption-enabled",
        "DataEncryption changed but the flight/key are not set",
    ),
    RuleInfo(
        "reencryption-stalled",
        C,
        "reencryption-complete",
        "the re-encryption job errors or makes no progress",
    ),
    RuleInfo(
        "sf-version-unsupported-for-rotation",
        C,
        "sf-staged",
        "Service Fabric 7.0.x/7.1.x cannot rotate",
    ),
    RuleInfo(
        "sf-upgrade-stuck",
        C,
        "sf-upgraded",
        "the configuration upgrade does not progress or rolls back",
    ),
    RuleInfo(
        "sf-replica-check-timeout-reset",
        W,
        "sf-upgraded",
        "ReplicaSetCheckTimeout is back at its huge default",
    ),
    RuleInfo(
        "credentials-json-on-old-cert",
        C,
        "credentials-rotated",
        "Credentials.json values are encrypted to the old encipherment certificate",
    ),
    RuleInfo("tls-chain-invalid", W, "", "an endpoint presents a chain clients reject (name, trust, self-signed)"),
    RuleInfo("tls-probe-failed", W, "", "one address behind a name fails while the others answer"),
    RuleInfo("state-store-failing", W, "", "the state store cannot be written (disk full, read-only, corrupt)"),
)


def catalogue(rule: str) -> RuleInfo | None:
    """The catalogue entry of a rule id."""
    return next((info for info in CATALOGUE if info.id == rule), None)


_REMEDIATION_OF = {info.id: info.remediation for info in CATALOGUE if info.remediation}


def with_remediation(finding: Finding) -> Finding:
    """The finding with the catalogue's remediation when its rule named none."""
    remediation = _REMEDIATION_OF.get(finding.rule)
    if finding.remediation or not remediation:
        return finding
    return dataclasses.replace(finding, remediation=remediation)
