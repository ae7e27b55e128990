"""`certmon remediate`: list remediations, print a plan (the default dry run), or apply one.

The daemon side of the remediation framework: it builds the `RemediationContext` from a
fresh collection and evaluation, wires the audit to the JSON-lines file and the state store,
and gives the engine a `recollect` callback that re-runs sources and re-evaluates. The API
(a later issue) reuses `remediation_engine` and `remediation_context`.
"""

from __future__ import annotations

import argparse
import dataclasses
import signal
import sys
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from daemon.app import Daemon
    from daemon.state import StateStore
    from remediations.audit import Auditor, AuditRecord, AuditSink
    from remediations.base import RemediationContext
    from remediations.engine import Engine
    from remediations.outcome import Availability, Result

EXIT_OK, EXIT_FAILED, EXIT_USAGE = 0, 1, 2
DEFAULT_WAIT_SECONDS = 30.0


def register_remediate(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add the `remediate` sub-command."""
    sub = commands.add_parser(
        "remediate",
        help="list remediations, show a plan (dry run), or apply one with --apply",
        description="Without NAME: list remediations and whether each applies now. With NAME: print the plan "
        "(a dry run: nothing changes). With NAME --apply: apply it, with backup, rollback and audit.",
    )
    sub.add_argument("name", nargs="?", metavar="NAME", help="the remediation to plan or apply")
    sub.add_argument("--apply", action="store_true", help="apply the plan (default: dry run, nothing changes)")
    sub.add_argument(
        "--expect-plan", metavar="DIGEST", help="apply only if the plan still has this digest (shown by the dry run)"
    )
    sub.add_argument(
        "--wait",
        type=float,
        default=DEFAULT_WAIT_SECONDS,
        metavar="SECONDS",
        help=f"wait this long for another remediation of the environment to finish (default {DEFAULT_WAIT_SECONDS:g})",
    )
    sub.add_argument("--format", choices=("table", "json"), default="table", help="output format")
    sub.add_argument(
        "--without-cluster-evidence",
        action="store_true",
        help="let localagent-config-update / deployment-config-update apply without a Service Fabric gateway "
        "source (you confirmed the configuration upgrade yourself); recorded in the audit",
    )
    sub.set_defaults(func=cmd_remediate)


def store_sink(store: StateStore) -> AuditSink:
    """An audit sink writing to the state store's audit table."""

    def sink(record: AuditRecord) -> None:
        data = record.to_dict()
        detail = {k: data[k] for k in ("run_id", "environment", "message", "plan", "backups", "detail")}
        store.add_audit(
            at=record.at,
            actor=data["actor"],
            host=data["host"],
            remediation=data["remediation"],
            target=data["target"],
            mode=data["mode"],
            outcome=data["outcome"],
            detail=detail,
        )

    return sink


def remediation_auditor(daemon: Daemon) -> Auditor:
    """The daemon's audit: the JSON-lines file in the data directory and the state store."""
    from remediations.audit import AUDIT_FILE, Auditor, JsonlAuditLog

    return Auditor([JsonlAuditLog(daemon.settings.data_dir / AUDIT_FILE), store_sink(daemon.store)])


def remediation_engine(daemon: Daemon, lock_timeout: float = DEFAULT_WAIT_SECONDS, actor: str | None = None) -> Engine:
    """The engine for the daemon's environment: audit to the JSON-lines file and the state store."""
    from remediations.engine import Engine

    settings = daemon.settings
    auditor = remediation_auditor(daemon)
    return Engine(
        data_dir=settings.data_dir,
        environment=settings.environment,
        auditor=auditor,
        actor=actor,
        clock=daemon.clock,
        lock_timeout=lock_timeout,
    )


def remediation_options(daemon: Daemon, progress: Callable[[str], None] | None = None) -> dict[str, Any]:
    """What remediations need beyond files: the Service Fabric gateway access and a progress callback."""
    from daemon.sources import gateway_config
    from remediations.sfgateway import OPTION, PROGRESS_OPTION, GatewayAccess

    options: dict[str, Any] = {}
    config = gateway_config(daemon.settings)
    if config is not None:
        section = daemon.settings.sources.servicefabric
        collector = daemon.collectors.get("servicefabric")
        connector = getattr(collector, "connector", None)
        if connector is None:
            from collectors.servicefabric.connector import Connector

            connector = Connector(config, daemon.clock)
        options[OPTION] = GatewayAccess(
            connector, timeout=section.timeout_seconds, follow_seconds=section.follow_upgrade_seconds
        )
    if progress is not None:
        options[PROGRESS_OPTION] = progress
    if daemon.settings.rules.agent_updates_without_cluster_evidence:
        from remediations.sfgates import OVERRIDE_OPTION

        options[OVERRIDE_OPTION] = True
    return options


def remediation_context(daemon: Daemon, progress: Callable[[str], None] | None = None) -> RemediationContext:
    """The latest evaluation, the configured file locations, and a re-collect callback."""
    from daemon.sqlremediate import sql_remediation_options
    from remediations.base import Recollection, RemediationContext

    sources = daemon.settings.sources
    files = {
        name: path
        for name, path in (
            ("localagent", sources.localagent.path),
            ("clusterconfig", sources.clusterconfig.path),
        )
        if path is not None
    }

    def recollect(names: Sequence[str]) -> Recollection:
        for name in names:
            if name in daemon.collectors:
                daemon.runner.run_source(name)
        view = daemon.publish()
        return Recollection(view.evaluation.snapshot, view.evaluation.findings)

    evaluation = daemon.view.evaluation
    return RemediationContext(
        environment=daemon.settings.environment,
        snapshot=evaluation.snapshot,
        findings=evaluation.findings,
        now=evaluation.evaluated_at,
        files=files,
        options={**remediation_options(daemon, progress), **sql_remediation_options(daemon)},
        recollect=recollect,
    )


def cmd_remediate(args: argparse.Namespace) -> int:
    """Collect once, evaluate, then list, plan or apply."""
    from daemon.app import Daemon
    from daemon.logs import setup_logging
    from daemon.output import Progress
    from daemon.settings import load_settings
    from remediations.registry import UnknownRemediation, all_remediations, get_remediation

    if args.apply and not args.name:
        print("certmon remediate: --apply needs the NAME of a remediation", file=sys.stderr)
        return EXIT_USAGE
    if args.expect_plan and not args.apply:
        print("certmon remediate: --expect-plan only makes sense with --apply", file=sys.stderr)
        return EXIT_USAGE
    if args.wait < 0:
        print("certmon remediate: --wait must not be negative", file=sys.stderr)
        return EXIT_USAGE
    try:
        chosen = get_remediation(args.name) if args.name else None
    except UnknownRemediation as err:
        print(f"certmon remediate: {err}", file=sys.stderr)
        return EXIT_USAGE
    settings = load_settings(args.config, required=args.config_required)
    setup_logging(args.log_level or "ERROR")
    daemon = Daemon(settings)
    progress = Progress()
    daemon.on_progress = progress.update
    try:
        try:
            daemon.collect_once()
        finally:
            progress.finish()
            daemon.on_progress = None
        engine = remediation_engine(daemon, args.wait)
        ctx = remediation_context(daemon, progress=_progress_printer(args.format))
        if args.without_cluster_evidence:
            from remediations.sfgates import OVERRIDE_OPTION

            ctx = dataclasses.replace(ctx, options={**ctx.options, OVERRIDE_OPTION: True})
        if chosen is None:
            return print_list([engine.assess(r, ctx) for r in all_remediations()], settings.environment, args.format)
        if args.apply:
            result = engine.apply(chosen, ctx, expected_digest=args.expect_plan)
        else:
            result = engine.dry_run(chosen, ctx)
        print_result(result, chosen.description, chosen.step, args.format)
        if result.signal:
            return 128 + int(signal.Signals[result.signal])
        return result.exit_code
    finally:
        daemon.stop()


def _progress_printer(fmt: str) -> Callable[[str], None]:
    """Progress lines (an upgrade moving) on stdout for tables, on stderr when stdout carries JSON."""

    def show(text: str) -> None:
        print(f"progress: {text}", file=sys.stderr if fmt == "json" else sys.stdout, flush=True)

    return show


def print_list(items: list[Availability], environment: str, fmt: str) -> int:
    """The remediations, whether each applies now, and why not."""
    from daemon.output import dump_json, table

    if fmt == "json":
        dump_json({"environment": environment, "remediations": [item.to_dict() for item in items]})
        return EXIT_OK
    table(
        ("REMEDIATION", "STEP", "APPLIES", "FINDINGS", "WHAT OR WHY NOT"),
        [
            (i.remediation.name, i.remediation.step, "yes" if i.applies else "no", len(i.findings), i.reason)
            for i in items
        ],
    )
    print("\n`certmon remediate NAME` shows the plan; add --apply to apply it.")
    return EXIT_OK


def print_result(result: Result, description: str, step: str, fmt: str) -> None:
    """A dry run's or an apply's outcome, with the checks, the plan and what happens next."""
    from daemon.output import dump_json
    from remediations.plan import follow_up_text

    if fmt == "json":
        dump_json(result.to_dict())
        return
    out = [f"{result.remediation}: {description} (runbook step {step})", ""]
    if result.recovered:
        out += [
            f"note: an earlier run ({result.recovered.get('run_id', '')[:8]}) did not finish; recorded in the audit"
        ]
    if result.findings_before:
        out += ["FINDINGS"] + [f"  {f.severity}: {f.message}" for f in result.findings_before] + [""]
    if result.checks:
        out += ["PRECONDITIONS"] + [f"  [{'ok' if c.ok else 'FAIL'}] {c.name}: {c.detail}" for c in result.checks]
        out.append("")
    plan = result.plan
    if plan is not None:
        out.append(f"PLAN (digest {plan.digest})" if not plan.empty else "PLAN")
        out.append(plan.render().rstrip("\n"))
        if plan.follow_up and not plan.empty:
            out += ["", "AFTERWARDS (certmon cannot do these for you)", follow_up_text(plan.follow_up).rstrip("\n")]
        out.append("")
    out.append(f"RESULT: {result.outcome}: {result.message}")
    out += [f"backup: {path}" for path in result.backups]
    out += [f"rollback: {line}" for line in result.rollback]
    out += [f"warning: audit not written: {failure}" for failure in result.audit_failures]
    if result.signal and str(result.outcome) == "applied":
        out.append(
            f"note: {result.signal} arrived after the change was committed; the run was recorded before stopping"
        )
    print("\n".join(out))
