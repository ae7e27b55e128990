"""What the one-shot CLI commands print: inventory, status, inspected files, configuration check."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

from collectors.certificate import iso_z
from collectors.model import Severity
from daemon.app import Daemon
from daemon.configcheck import unknown_environment
from daemon.nextaction import next_action
from daemon.output import Progress, dump_json, table
from daemon.payloads import collection_payload, source_row, status_payload
from daemon.rotation import Checklist, StepStatus
from daemon.settings import ConfigError, Settings
from daemon.sources.registry import build_collectors, configured_paths
from daemon.sources.servicefabric import certificate_problems
from daemon.view import View

#: exit codes: 2 (usage, configuration) is the CLI's; README, Exit codes
EXIT_OK, EXIT_FINDINGS, EXIT_NOT_COLLECTED = 0, 1, 3


def collect_once(settings: Settings) -> View:
    """Collect every configured source once, with a progress line on a terminal."""
    progress = Progress()
    daemon = Daemon(settings)
    daemon.on_progress = progress.update
    if progress.enabled:
        progress.total = daemon.runner.target_count()
    try:
        return daemon.collect_once()
    finally:
        progress.finish()
        daemon.stop()


def _exit_code(view: View) -> int:
    """3 when something could not be read (whatever the findings), 1 for findings, 0 when all is well."""
    snapshot = view.evaluation.snapshot
    unread = any(not r.health.ok or (r.observation is not None and r.observation.problems) for r in snapshot)
    if unread:
        return EXIT_NOT_COLLECTED
    serious = any(f.severity in (Severity.CRITICAL, Severity.WARNING) for f in view.evaluation.findings)
    return EXIT_FINDINGS if serious else EXIT_OK


def _print_sources(view: View) -> None:
    rows = []
    for r in view.evaluation.snapshot:
        row = source_row(r, view)
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


EVIDENCE_LINES = 6


def _print_next_action(action: dict[str, Any]) -> None:
    print(f"NEXT ACTION: {action['what']}")
    for blocker in action["blocked_by"]:
        print(f"  blocked by: {blocker}")
    for remediation in action["remediations"]:
        print(f"  remediation {remediation['name']}: dry run with `{remediation['dry_run']}`, then add --apply")
    print()


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


def _print_preflight(preflight: dict[str, Any]) -> None:
    if not preflight:
        return
    name = preflight.get("remediation")
    if name is None:
        print(f"\nPRE-FLIGHT: {preflight['summary']}")
        return
    print(f"\nPRE-FLIGHT of {name} (step {preflight['step']}): {preflight['summary']}")
    table(("CHECK", "RESULT", "REASON"), [(c["name"], c["result"], c["reason"]) for c in preflight["checks"]])


def print_status(view: View, fmt: str) -> int:
    """Print sources, the rotation checklist and findings."""
    checklist = view.evaluation.checklist
    if fmt == "json":
        dump_json(status_payload(view))
        return _exit_code(view)
    print(f"environment {view.evaluation.snapshot.environment}, {iso_z(view.evaluation.evaluated_at)}\n")
    _print_next_action(next_action(view.evaluation))
    _print_sources(view)
    _print_checklist(checklist)
    _print_preflight(view.preflight)
    _print_findings(view)
    return _exit_code(view)


def _exists(path: Path | None) -> str:
    if path is None:
        return ""
    return "ok" if path.exists() else "missing"


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


def _auth(settings: Settings, source: str) -> dict[str, str]:
    """How a source authenticates, for sources that say (never a secret)."""
    section = getattr(settings.sources, source, None)
    summary = getattr(section, "auth_summary", None)
    return {"auth": summary()} if callable(summary) else {}


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
                **_auth(settings, collector.name),
            }
        )
    for label, path in (
        *configured_paths(settings),
        ("exporter.web_config_file", settings.exporter.web_config_file),
    ):
        if _exists(path) == "missing":
            problems.append(f"{label}: {path} does not exist")
    problems += certificate_problems(settings.sources.servicefabric)
    if (winrm_problem := settings.sources.winrm.auth_problem()) is not None:
        problems.append(winrm_problem)
    if settings.exporter.web_config_file is not None:
        from daemon.webconfig import load_web_config

        try:
            load_web_config(settings.exporter.web_config_file)
        except ConfigError as err:
            problems.append(str(err))
    problems += _api_problems(settings)
    if not collectors and not problems:
        problems.append(
            "no source is enabled: give at least one source its location under sources: (see README, Configuration)"
        )
    ignored = unknown_environment(Settings)
    if fmt == "json":
        dump_json(
            {"environment": settings.environment, "sources": rows, "problems": problems, "ignored_environment": ignored}
        )
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
        for row in rows:
            if row.get("auth"):
                print(f"auth {row['source']}: {row['auth']}")
        for name in ignored:
            print(f"ignored: environment variable {name} is not a certmon setting", file=sys.stderr)
        for problem in problems:
            print(f"problem: {problem}", file=sys.stderr)
    return 2 if problems else EXIT_OK
