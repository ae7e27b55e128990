"""`certmon remediate`: list remediations, print a plan (the default dry run), or apply one.

The command collects once, then uses the daemon's remediation wiring (`daemon.remediation`), as the API does.
"""

from __future__ import annotations

import argparse
import dataclasses
import signal
import sys
from collections.abc import Callable
from typing import TYPE_CHECKING

from daemon.remediation import DEFAULT_WAIT_SECONDS

if TYPE_CHECKING:
    from remediations.outcome import Availability, Result

EXIT_OK, EXIT_FAILED, EXIT_USAGE = 0, 1, 2


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


def cmd_remediate(args: argparse.Namespace) -> int:
    """Collect once, evaluate, then list, plan or apply."""
    from daemon.app import Daemon
    from daemon.logs import setup_logging
    from daemon.output import Progress
    from daemon.remediation import remediation_context, remediation_engine
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
    from daemon.flags import apply_flags

    settings = load_settings(args.config, required=args.config_required)
    apply_flags(settings, args)
    setup_logging(args.log_level or "ERROR", args.log_format or settings.log_format)
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
