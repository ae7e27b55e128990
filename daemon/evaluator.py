"""The evaluator: pure functions of (snapshot, history, clock, settings) giving findings."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import datetime

from collectors.agentconfig import SETTING_ROLES, AgentConfig, agent_drift, agent_target
from collectors.configtemplate import ConfigTemplate
from collectors.model import (
    CertObservation,
    CertReference,
    Finding,
    Generation,
    Severity,
    Snapshot,
)
from daemon.settings import Settings
from daemon.sqlfindings import SQL_RULES
from daemon.state import LocationHistory
from daemon.tlsfindings import TLS_RULES


@dataclass(frozen=True)
class Evaluation:
    """Everything derived from one snapshot: resolved references, roles and findings."""

    snapshot: Snapshot
    references: tuple[CertReference, ...]
    roles: Mapping[str, tuple[str, ...]]
    findings: tuple[Finding, ...]
    evaluated_at: datetime


@dataclass(frozen=True)
class Context:
    """What every rule may look at."""

    snapshot: Snapshot
    references: tuple[CertReference, ...]
    roles: Mapping[str, tuple[str, ...]]
    history: Sequence[LocationHistory]
    now: datetime
    settings: Settings


Rule = Callable[[Context], Iterable[Finding]]


def template_generations(snapshot: Snapshot) -> dict[str, dict[str, Generation]]:
    """Per role, thumbprint -> generation as the ConfigTemplate pair declares it."""
    templates = [facts for _, facts in snapshot.facts("configtemplate", ConfigTemplate)]
    new = {
        (c.role, c.thumbprint)
        for t in templates
        if t.generation is Generation.NEW
        for c in t.active_certificates()
        if c.thumbprint
    }
    out: dict[str, dict[str, Generation]] = defaultdict(dict)
    for template in templates:
        for cert in template.active_certificates():
            if not cert.thumbprint:
                continue
            is_new = (cert.role, cert.thumbprint) in new
            out[cert.role][cert.thumbprint] = Generation.NEW if is_new else Generation.OLD
    return out


def resolve_references(snapshot: Snapshot) -> tuple[CertReference, ...]:
    """Every reference, with its generation corrected by the ConfigTemplate pair where it knows."""
    known = template_generations(snapshot)
    resolved = []
    for ref in snapshot.references():
        generation = known.get(ref.role, {}).get(ref.thumbprint)
        if generation is not None and generation is not ref.generation:
            resolved.append(replace(ref, generation=generation))
        else:
            resolved.append(ref)
    return tuple(dict.fromkeys(resolved))


def role_index(references: Iterable[CertReference]) -> dict[str, tuple[str, ...]]:
    """Thumbprint -> the sorted roles that reference it."""
    roles: dict[str, set[str]] = defaultdict(set)
    for ref in references:
        if ref.thumbprint:
            roles[ref.thumbprint].add(ref.role)
    return {thumbprint: tuple(sorted(names)) for thumbprint, names in roles.items()}


def _by_thumbprint(certs: Iterable[CertObservation]) -> dict[str, list[CertObservation]]:
    grouped: dict[str, list[CertObservation]] = defaultdict(list)
    for obs in certs:
        grouped[obs.thumbprint].append(obs)
    return grouped


def _where(observations: Sequence[CertObservation]) -> str:
    nodes = sorted({o.node for o in observations})
    if len(nodes) <= 3:
        return ", ".join(nodes)
    return f"{', '.join(nodes[:3])} and {len(nodes) - 3} more"


def expiry_findings(ctx: Context) -> Iterable[Finding]:
    """Expired, not yet valid, and inside the role's warning or critical window."""
    for thumbprint, observations in _by_thumbprint(ctx.snapshot.certificates()).items():
        cert = observations[0].certificate
        roles = ctx.roles.get(thumbprint, ())
        if not roles and not ctx.settings.unreferenced_certificates:
            continue
        node = observations[0].node if len({o.node for o in observations}) == 1 else ""
        label = cert.subject_cn or cert.subject or thumbprint
        where = _where(observations)
        days = cert.days_left(ctx.now)
        for role in roles or ("",):
            role_text = f"{role} certificate" if role else "certificate"
            common = {"role": role, "thumbprint": thumbprint, "node": node, "step": "certs-generated"}
            if cert.not_before > ctx.now:
                yield Finding(
                    "cert-not-yet-valid",
                    Severity.WARNING,
                    f"{role_text} {label} ({thumbprint}) is not valid before "
                    f"{cert.not_before:%Y-%m-%d %H:%M}Z; seen on {where}",
                    **common,
                )
            if days <= 0:
                yield Finding(
                    "cert-expired",
                    Severity.CRITICAL,
                    f"{role_text} {label} ({thumbprint}) expired on {cert.not_after:%Y-%m-%d}; seen on {where}",
                    **common,
                )
                continue
            window = ctx.settings.expiry_window(role)
            if days <= window.critical_days:
                rule, severity = "cert-expiry-critical", Severity.CRITICAL
            elif days <= window.warning_days:
                rule, severity = "cert-expiry-warning", Severity.WARNING
            else:
                continue
            yield Finding(
                rule,
                severity,
                f"{role_text} {label} ({thumbprint}) expires in {days:.0f} days "
                f"({cert.not_after:%Y-%m-%d}); seen on {where}",
                **common,
            )


def source_down_findings(ctx: Context) -> Iterable[Finding]:
    """Every target whose latest collection failed."""
    for result in ctx.snapshot:
        if result.health.ok:
            continue
        age = result.age_seconds(ctx.now)
        kept = "no data yet" if age is None else f"showing data from {age / 60:.0f} min ago"
        yield Finding(
            "source-down",
            Severity.WARNING,
            f"{result.source} {result.target} is failing ({result.health.reason}): {result.health.message}; {kept}",
            source=result.source,
            target=result.target,
        )


def agent_config_findings(ctx: Context) -> Iterable[Finding]:
    """localagent-config.json server/client thumbprints that differ from the cluster's current ones."""
    target = agent_target(ctx.snapshot)
    roles = dict(SETTING_ROLES)
    for file_target, config in ctx.snapshot.facts("localagent", AgentConfig):
        for setting, current, wanted in agent_drift(config, target):
            yield Finding(
                "agent-config-thumbprint-stale",
                Severity.WARNING,
                f"{file_target} {setting.rsplit('.', 1)[1]} is {current or '(empty)'} but the cluster uses "
                f"{wanted} ({target.basis}); the LocalAgent loses the cluster once the old certificate is removed",
                role=roles[setting],
                thumbprint=current,
                source="localagent",
                target=file_target,
                step="localagent-updated",
                remediation="localagent-config-update",
            )


RULES: list[Rule] = [expiry_findings, source_down_findings, agent_config_findings, *TLS_RULES, *SQL_RULES]


def evaluate(
    snapshot: Snapshot,
    history: Sequence[LocationHistory],
    now: datetime,
    settings: Settings,
    rules: Sequence[Rule] = tuple(RULES),
) -> Evaluation:
    """Run every rule on one snapshot."""
    references = resolve_references(snapshot)
    roles = role_index(references)
    ctx = Context(snapshot, references, roles, history, now, settings)
    findings: dict[tuple[str, ...], Finding] = {}
    for rule in rules:
        for finding in rule(ctx):
            findings.setdefault(finding.key(), finding)
    ordered = sorted(findings.values(), key=lambda f: (_SEVERITY_ORDER[f.severity], f.rule, f.key()))
    return Evaluation(snapshot, references, roles, tuple(ordered), now)


_SEVERITY_ORDER = {Severity.CRITICAL: 0, Severity.WARNING: 1, Severity.INFO: 2}
