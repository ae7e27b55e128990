"""The JSON documents of a view: what `collect --once` and `status` print and the status API serves.

Pure functions of a `View` (daemon.view); the CLI commands (daemon.report) and the status cache use them.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from collectors.certificate import LoadedCertificate, iso_z, to_record
from collectors.model import CertObservation, Finding, SourceResult
from daemon.nextaction import next_action, remediations_for_step
from daemon.rotation import Checklist
from daemon.view import View


def source_row(result: SourceResult, view: View) -> dict[str, Any]:
    """One source's health and counts."""
    now = view.evaluation.evaluated_at
    observation = result.observation
    return {
        "source": result.source,
        "target": result.target,
        "up": result.health.ok,
        "stale": result.stale,
        "reason": str(result.health.reason) if result.health.reason else None,
        "message": result.health.message,
        "duration_seconds": round(result.health.duration_seconds, 3),
        "age_seconds": result.age_seconds(now),
        "certificates": len(observation.certificates) if observation else 0,
        "references": len(observation.references) if observation else 0,
        "problems": [p.message for p in observation.problems] if observation else [],
    }


def finding_row(finding: Finding) -> dict[str, Any]:
    """One finding as JSON-ready data."""
    return {
        "rule": finding.rule,
        "severity": str(finding.severity),
        "message": finding.message,
        "role": finding.role,
        "thumbprint": finding.thumbprint,
        "node": finding.node,
        "source": finding.source,
        "target": finding.target,
        "step": finding.step,
        "remediation": finding.remediation,
    }


def collection_payload(view: View, observations: Iterable[CertObservation] | None = None) -> dict[str, Any]:
    """The JSON document `collect --once` prints (with every certificate, or those given)."""
    evaluation = view.evaluation
    roles = evaluation.roles
    certificates = []
    for obs in evaluation.snapshot.certificates() if observations is None else observations:
        record = to_record(LoadedCertificate(obs.certificate, obs.has_private_key, obs.location))
        record.update(
            source=obs.source,
            node=obs.node,
            store=obs.store,
            roles=list(roles.get(obs.thumbprint, ())),
            key_provider=obs.key_provider,
            location=obs.location,
        )
        del record["path"]
        certificates.append(record)
    return {
        "environment": evaluation.snapshot.environment,
        "collected_at": iso_z(evaluation.evaluated_at),
        "sources": [source_row(r, view) for r in evaluation.snapshot],
        "certificates": certificates,
        "references": [
            {
                "role": r.role,
                "thumbprint": r.thumbprint,
                "generation": str(r.generation),
                "reference": r.reference,
                "source": r.source,
            }
            for r in evaluation.references
        ],
        "findings": [finding_row(f) for f in evaluation.findings],
    }


def checklist_payload(checklist: Checklist) -> dict[str, Any]:
    """The rotation checklist and the old certificates as JSON-ready data."""
    return {
        "checklist": [
            {
                "step": s.step,
                "title": s.title,
                "status": str(s.status),
                "detail": s.detail,
                "evidence": list(s.evidence),
                "remediations": remediations_for_step(s.step),
            }
            for s in checklist.steps
        ],
        "old_certificates": [
            {
                "role": c.role,
                "thumbprint": c.thumbprint,
                "safe_to_remove": c.safe_to_remove,
                "blocking": list(c.blocking),
            }
            for c in checklist.old_certificates
        ],
    }


def status_payload(view: View, payload: dict[str, Any] | None = None) -> dict[str, Any]:
    """The JSON document `status` prints: sources, the checklist, old certificates, findings.

    `payload` is the view's `collection_payload` when the caller already has it.
    """
    payload = payload if payload is not None else collection_payload(view)
    document = {k: payload[k] for k in ("environment", "collected_at", "sources")}
    document["next_action"] = next_action(view.evaluation)
    document["preflight"] = view.preflight
    document.update(checklist_payload(view.evaluation.checklist))
    document["findings"] = payload["findings"]
    return document
