"""What the one-shot CLI commands print: inventory, status, inspected files, configuration check."""

from __future__ import annotations

import sys
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from collectors.certfiles import load_certificate_file
from collectors.certificate import LoadedCertificate, iso_z, to_record
from collectors.errors import CertificateError
from collectors.model import CertObservation, Finding, Severity, SourceResult
from collectors.secrets import read_secret_file
from daemon.app import Daemon, View
from daemon.output import Progress, dump_json, table
from daemon.rotation import Checklist, StepStatus
from daemon.settings import ConfigError, Settings
from daemon.sources import build_collectors
from daemon.sqlsources import configured_paths

EXIT_OK, EXIT_FINDINGS = 0, 1


def collect_once(settings: Settings) -> View:
    """Collect every configured source once, with a progress line on a terminal."""
    progress = Progress()
    daemon = Daemon(settings)
    daemon.on_progress = progress.update
    try:
        return daemon.collect_once()
    finally:
        progress.finish()
        daemon.stop()


def _source_row(result: SourceResult, view: View) -> dict[str, Any]:
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


def _finding_row(finding: Finding) -> dict[str, Any]:
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


def _exit_code(view: View) -> int:
    bad_source = any(not r.health.ok for r in view.evaluation.snapshot)
    serious = any(f.severity in (Severity.CRITICAL, Severity.WARNING) for f in view.evaluation.findings)
    return EXIT_FINDINGS if bad_source or serious else EXIT_OK


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
        "sources": [_source_row(r, view) for r in evaluation.snapshot],
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
        "findings": [_finding_row(f) for f in evaluation.findings],
    }


def _print_sources(view: View) -> None:
    rows = []
    for r in view.evaluation.snapshot:
        row = _source_row(r, view)
        state = "up" if row["up"] else ("stale" if row["stale"] else "down")
        detail = row["message"] or "; ".join(row["problems"])
        rows.append((r.source, r.target, state, row["certificates"], row["references"], detail))
    table(("SOURCE", "TARGET", "STATE", "CERTS", "REFS", "DETAIL"), rows)


def _print_findings(view: View) -> None:
    findings = view.evaluation.findings
    if not findings:
        print("\nNo findings.")
        return
    print(f"\nFINDINGS ({len(findings)})")
    table(("SEVERITY", "RULE", "MESSAGE"), [(str(f.severity), f.rule, f.message) for f in findings])


def print_collection(view: View, fmt: str) -> int:
    """Print what one collection found."""
    if fmt == "json":
        dump_json(collection_payload(view))
        return _exit_code(view)
    _print_sources(view)
    roles = view.evaluation.roles
    now = view.evaluation.evaluated_at
    rows = sorted(
        (
            (
                o.node,
                o.store,
                o.thumbprint,
                o.certificate.subject_cn,
                ",".join(roles.get(o.thumbprint, ())),
                f"{o.certificate.not_after:%Y-%m-%d}",
                f"{o.certificate.days_left(now):.0f}",
                {True: "yes", False: "no", None: "?"}[o.has_private_key],
            )
            for o in view.evaluation.snapshot.certificates()
        ),
    )
    print(f"\nCERTIFICATES ({len(rows)})")
    table(("NODE", "STORE", "THUMBPRINT", "SUBJECT CN", "ROLES", "NOT AFTER", "DAYS", "KEY"), rows)
    _print_findings(view)
    return _exit_code(view)


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
    document.update(checklist_payload(view.evaluation.checklist))
    document["findings"] = payload["findings"]
    return document


EVIDENCE_LINES = 6


def _print_checklist(checklist: Checklist) -> None:
    print("\nROTATION CHECKLIST")
    rows: list[tuple[str, str, str]] = []
    for state in checklist.steps:
        rows.append((state.step, str(state.status), state.detail))
        if state.status in (StepStatus.PENDING, StepStatus.UNKNOWN):
            shown = state.evidence[:EVIDENCE_LINES]
            rows.extend(("", "", f"  {line}") for line in shown)
            if len(state.evidence) > len(shown):
                rows.append(("", "", f"  ... and {len(state.evidence) - len(shown)} more"))
    table(("STEP", "STATUS", "EVIDENCE"), rows)
    if checklist.old_certificates:
        print(f"\nOLD CERTIFICATES ({len(checklist.old_certificates)})")
        table(
            ("ROLE", "THUMBPRINT", "SAFE TO REMOVE", "STILL NEEDED BY"),
            [
                (c.role, c.thumbprint, "yes" if c.safe_to_remove else "no", ", ".join(c.blocking))
                for c in checklist.old_certificates
            ],
        )


def print_status(view: View, fmt: str) -> int:
    """Print sources, the rotation checklist and findings."""
    checklist = view.evaluation.checklist
    if fmt == "json":
        dump_json(status_payload(view))
        return _exit_code(view)
    print(f"environment {view.evaluation.snapshot.environment}, {iso_z(view.evaluation.evaluated_at)}\n")
    _print_sources(view)
    _print_checklist(checklist)
    _print_findings(view)
    return _exit_code(view)


def inspect_files(files: list[str], password_file: str | None, fmt: str) -> int:
    """`certmon inspect`: every certificate in the files; bad files named on stderr, exit 1."""
    password = None
    if password_file:
        try:
            password = read_secret_file(password_file).encode()
        except OSError as err:
            print(f"{password_file}: cannot read password file: {err.strerror}", file=sys.stderr)
            return 2
    found: list[LoadedCertificate] = []
    failed = False
    for name in files:
        try:
            found.extend(load_certificate_file(name, password))
        except CertificateError as err:
            print(str(err), file=sys.stderr)
            failed = True
    if fmt == "json":
        dump_json([to_record(item) for item in found])
    else:
        table(
            ("PATH", "THUMBPRINT", "SUBJECT CN", "NOT AFTER", "KEY", "SIZE", "SELF-SIGNED", "PRIVATE KEY"),
            [
                (
                    i.source,
                    i.certificate.thumbprint,
                    i.certificate.subject_cn,
                    iso_z(i.certificate.not_after),
                    i.certificate.key_algorithm,
                    i.certificate.key_size,
                    i.certificate.self_signed,
                    {True: "yes", False: "no", None: "?"}[i.has_private_key],
                )
                for i in found
            ],
        )
    return EXIT_FINDINGS if failed else EXIT_OK


def _exists(path: Path | None) -> str:
    if path is None:
        return ""
    return "ok" if path.exists() else "missing"


def _gateway_certificate_problems(settings: Settings) -> list[str]:
    """Open the Service Fabric client certificates now, so a wrong path or password shows before the run."""
    from collectors.errors import CollectorError
    from collectors.servicefabric.identity import CertificateFile, load_identity

    section = settings.sources.servicefabric
    named = [("sources.servicefabric.client_certificate", section.client_certificate)]
    named += [(f"sources.servicefabric.admin_certificates.{i}", c) for i, c in enumerate(section.admin_certificates)]
    problems = []
    for label, certificate in named:
        if certificate is None or not section.enabled:
            continue
        try:
            load_identity(CertificateFile(certificate.path, certificate.key_path, certificate.password_bytes()))
        except (CollectorError, ConfigError) as err:
            problems.append(f"{label}: {err}")
    return problems


def _api_problems(settings: Settings) -> list[str]:
    """The API's listener, web config and credentials, checked as the daemon will at start-up."""
    if not settings.api.enabled:
        return []
    from daemon.api import check_api_settings
    from daemon.apiauth import ApplyAuth
    from daemon.webconfig import load_web_config

    try:
        web_config = load_web_config(settings.api.web_config_file)
        check_api_settings(settings, web_config)
        ApplyAuth(settings.api, web_config)
    except ConfigError as err:
        return [str(err)]
    return []


def check_config(settings: Settings, fmt: str) -> int:
    """Validate settings, open secrets, and list what each source would read."""
    problems: list[str] = []
    try:
        collectors = build_collectors(settings)
    except ConfigError as err:
        problems.append(str(err))
        collectors = []
    rows: list[dict[str, Any]] = []
    for collector in collectors:
        targets = list(collector.targets())
        rows.append(
            {
                "source": collector.name,
                "interval_seconds": collector.interval,
                "timeout_seconds": collector.timeout,
                "targets": targets,
            }
        )
    sources = settings.sources
    for label, path in (
        ("sources.configtemplate.infrastructure", sources.configtemplate.infrastructure),
        ("sources.configtemplate.infrastructure_old", sources.configtemplate.infrastructure_old),
        ("sources.clusterconfig.path", sources.clusterconfig.path),
        ("sources.localagent.path", sources.localagent.path),
        ("sources.certfolder.path", sources.certfolder.path),
        ("sources.winrm.config_template", sources.winrm.config_template),
        ("sources.winrm.ca_bundle", sources.winrm.ca_bundle),
        ("sources.winrm.password_file", sources.winrm.password_file),
        ("exporter.web_config_file", settings.exporter.web_config_file),
        ("sources.tls.ca_bundle", sources.tls.ca_bundle),
        ("sources.adfs.ca_bundle", sources.adfs.ca_bundle),
        *((f"sources.tls.endpoints.{i}.ca_bundle", e.ca_bundle) for i, e in enumerate(sources.tls.endpoints)),
        ("sources.servicefabric.ca_bundle", sources.servicefabric.ca_bundle),
        *configured_paths(settings),
    ):
        if _exists(path) == "missing":
            problems.append(f"{label}: {path} does not exist")
    problems += _gateway_certificate_problems(settings)
    if settings.exporter.web_config_file is not None:
        from daemon.webconfig import load_web_config

        try:
            load_web_config(settings.exporter.web_config_file)
        except ConfigError as err:
            problems.append(str(err))
    problems += _api_problems(settings)
    if fmt == "json":
        dump_json({"environment": settings.environment, "sources": rows, "problems": problems})
    else:
        print(f"environment: {settings.environment}")
        print(f"data_dir: {settings.data_dir}")
        print(f"exporter: {settings.exporter.listen_address}:{settings.exporter.port}")
        api = settings.api
        where = f"{api.listen_address}:{api.effective_port(settings.exporter.port)}" if api.enabled else "off"
        print(f"status page and API: {where}\n")
        table(
            ("SOURCE", "INTERVAL", "TIMEOUT", "TARGETS"),
            [(r["source"], r["interval_seconds"], r["timeout_seconds"], ", ".join(r["targets"])) for r in rows],
        )
        for problem in problems:
            print(f"problem: {problem}", file=sys.stderr)
    return 2 if problems else EXIT_OK
