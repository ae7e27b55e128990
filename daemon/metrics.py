"""Metric families built once per evaluation; a scrape only renders them."""

from __future__ import annotations

import logging
import platform
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from prometheus_client.core import Metric

from collectors.base import Collector
from collectors.errors import Reason
from collectors.model import MetricSpec
from daemon import __version__
from daemon.agentmetrics import agent_families
from daemon.deadline import deadline_families
from daemon.evaluator import Evaluation
from daemon.families import Families
from daemon.rotation import StepStatus
from daemon.storesummary import SUMMARY_LABELS, StoreSummary

if TYPE_CHECKING:
    from daemon.settings import Settings

log = logging.getLogger("certmon.metrics")

CERT_LABELS = ("environment", "source", "node", "store", "thumbprint", "subject_cn", "issuer_cn", "role")
FINDING_LABELS = (
    "environment",
    "rule",
    "severity",
    "role",
    "thumbprint",
    "node",
    "source",
    "target",
    "step",
    "remediation",
)
SOURCE_LABELS = ("environment", "source", "target")


def build_families(
    evaluation: Evaluation, collectors: Mapping[str, Collector], settings: Settings | None = None
) -> list[Metric]:
    """Every certmon metric for one evaluation."""
    snapshot = evaluation.snapshot
    env = snapshot.environment
    out = Families()
    not_after = out.gauge(
        "certmon_cert_not_after_timestamp_seconds", "Certificate expiry (notAfter), Unix time.", CERT_LABELS
    )
    not_before = out.gauge(
        "certmon_cert_not_before_timestamp_seconds", "Certificate start (notBefore), Unix time.", CERT_LABELS
    )
    has_key = out.gauge(
        "certmon_cert_has_private_key",
        "1 when the certificate's private key is present at that location (where the source knows).",
        CERT_LABELS,
    )
    roles = evaluation.roles
    # Cardinality control: unreferenced certificates of exporter.summarized_stores become counts.
    summary = StoreSummary(settings.exporter.summarized_stores if settings is not None else ())
    for obs in summary.exported(snapshot.certificates(), roles):
        cert = obs.certificate
        for role in roles.get(obs.thumbprint, ("",)):
            labels = (env, obs.source, obs.node, obs.store, obs.thumbprint, cert.subject_cn, cert.issuer_cn, role)
            out.add(not_after, labels, cert.not_after_ts)
            out.add(not_before, labels, cert.not_before.timestamp())
            if obs.has_private_key is not None:
                out.add(has_key, labels, 1.0 if obs.has_private_key else 0.0)
    if summary.counts:
        count = out.gauge(
            "certmon_store_certificates",
            "Certificates of a summarized store (exporter.summarized_stores) that no configuration references.",
            SUMMARY_LABELS,
        )
        earliest = out.gauge(
            "certmon_store_earliest_not_after_timestamp_seconds",
            "The earliest notAfter among those summarized certificates, Unix time.",
            SUMMARY_LABELS,
        )
        for key, number in summary.counts.items():
            out.add(count, (env, *key), float(number))
            out.add(earliest, (env, *key), summary.earliest[key])
    expected = out.gauge(
        "certmon_expected_cert_info",
        "1 for each thumbprint a configuration references, by role and rotation generation.",
        ("environment", "role", "thumbprint", "generation", "reference"),
    )
    for ref in evaluation.references:
        if ref.thumbprint:
            out.add(expected, (env, ref.role, ref.thumbprint, str(ref.generation), ref.reference), 1.0)
    _source_families(evaluation, out)
    finding = out.gauge("certmon_finding", "1 for each active finding.", FINDING_LABELS)
    for item in evaluation.findings:
        finding_labels = (
            env,
            item.rule,
            str(item.severity),
            item.role,
            item.thumbprint,
            item.node,
            item.source,
            item.target,
            item.step,
            item.remediation,
        )
        out.add(finding, finding_labels, 1.0)
    _rotation_families(evaluation, out)
    deadline_families(evaluation, settings, out)
    for collector in collectors.values():
        for spec in collector.metrics:
            _spec_samples(spec, collector.name, evaluation, out)
    agent_families(evaluation, out)
    info = out.gauge(
        "certmon_build_info", "certmon version, for one environment.", ("environment", "version", "python")
    )
    out.add(info, (env, __version__, platform.python_version()), 1.0)
    evaluated = out.gauge(
        "certmon_last_evaluation_timestamp_seconds", "When findings were last computed, Unix time.", ("environment",)
    )
    out.add(evaluated, (env,), evaluation.evaluated_at.timestamp())
    return out.all()


def _rotation_families(evaluation: Evaluation, out: Families) -> None:
    env = evaluation.snapshot.environment
    done = out.gauge(
        "certmon_rotation_step_done",
        "1 when the evidence shows the rotation step done; 0 when pending, unknown or not applicable.",
        ("environment", "step"),
    )
    status = out.gauge(
        "certmon_rotation_step_status",
        "1 for the rotation step's current status (done, pending, not-applicable, unknown), 0 for the others.",
        ("environment", "step", "status"),
    )
    info = out.gauge(
        "certmon_rotation_step_info",
        "1 for each rotation step, with its position in the runbook and its title.",
        ("environment", "step", "order", "title"),
    )
    for order, state in enumerate(evaluation.checklist.steps, 1):
        out.add(info, (env, state.step, f"{order:02d}", state.title), 1.0)
        out.add(done, (env, state.step), 1.0 if state.status is StepStatus.DONE else 0.0)
        for value in StepStatus:
            out.add(status, (env, state.step, str(value)), 1.0 if state.status is value else 0.0)
    removable = out.gauge(
        "certmon_cert_safe_to_remove",
        "1 when every step that still needs the previous-generation certificate is done, else 0.",
        ("environment", "role", "thumbprint"),
    )
    for cert in evaluation.checklist.old_certificates:
        out.add(removable, (env, cert.role, cert.thumbprint), 1.0 if cert.safe_to_remove else 0.0)


def _source_families(evaluation: Evaluation, out: Families) -> None:
    env = evaluation.snapshot.environment
    up = out.gauge("certmon_source_up", "1 when the latest collection of the target succeeded.", SOURCE_LABELS)
    last = out.gauge(
        "certmon_source_last_success_timestamp_seconds",
        "When the target was last collected successfully.",
        SOURCE_LABELS,
    )
    duration = out.gauge(
        "certmon_source_duration_seconds", "How long the latest collection of the target took.", SOURCE_LABELS
    )
    errors = out.counter(
        "certmon_source_errors", "Failed collections of the target, by reason.", (*SOURCE_LABELS, "reason")
    )
    problems = out.gauge(
        "certmon_source_problems",
        "Non-fatal problems in the latest good collection (a bad file among good ones), by reason.",
        (*SOURCE_LABELS, "reason"),
    )
    for result in evaluation.snapshot:
        labels = (env, result.source, result.target)
        out.add(up, labels, 1.0 if result.health.ok else 0.0)
        if result.health.last_success_at is not None:
            out.add(last, labels, result.health.last_success_at.timestamp())
        out.add(duration, labels, result.health.duration_seconds)
        # Every reason of the closed set from 0, so rate() and increase() see the first error.
        for reason in Reason:
            out.add(errors, (*labels, str(reason)), float(result.errors_total.get(reason, 0)))
        if result.observation is not None:
            counts: dict[str, int] = {}
            for problem in result.observation.problems:
                counts[str(problem.reason)] = counts.get(str(problem.reason), 0) + 1
            for reason_text, count in sorted(counts.items()):
                out.add(problems, (*labels, reason_text), float(count))


def _spec_samples(spec: MetricSpec, source: str, evaluation: Evaluation, out: Families) -> None:
    family: Any = (
        out.counter(spec.name, spec.documentation, ("environment", *spec.labels))
        if spec.kind == "counter"
        else out.gauge(spec.name, spec.documentation, ("environment", *spec.labels))
    )
    env = evaluation.snapshot.environment
    for result in evaluation.snapshot.of_source(source):
        if result.observation is None and not result.health.ok and spec.no_data is not None:
            for values, value in spec.no_data(result.target):
                out.add(family, (env, *values), value)
            continue
        if result.observation is None or result.observation.facts is None:
            continue
        try:
            samples = list(spec.samples(result.observation.facts, result.target))
        except Exception:
            log.exception("metric %s failed for %s %s", spec.name, source, result.target)
            continue
        if result.stale and spec.stale_value is not None:
            samples = [(values, spec.stale_value) for values, _ in samples]
        for values, value in samples:
            out.add(family, (env, *values), value)
