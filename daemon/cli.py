"""The `certmon` command line."""

from __future__ import annotations

import argparse
import logging
import os
import sys
from collections.abc import Callable, Sequence
from pathlib import Path

from collectors.errors import CertmonError
from daemon import __version__
from daemon.logs import setup_logging
from daemon.remediate import register_remediate
from daemon.settings import ConfigError, Settings, load_settings

EXIT_OK, EXIT_FINDINGS, EXIT_USAGE = 0, 1, 2

log = logging.getLogger("certmon.cli")

Runner = Callable[[argparse.Namespace], int]


def _settings(args: argparse.Namespace) -> Settings:
    return load_settings(args.config, required=args.config_required)


def cmd_run(args: argparse.Namespace) -> int:
    """Run the daemon until SIGTERM or Ctrl+C."""
    from daemon.app import Daemon

    settings = _settings(args)
    setup_logging(args.log_level or settings.log_level)
    Daemon(settings).run_forever()
    return EXIT_OK


def cmd_collect(args: argparse.Namespace) -> int:
    """Collect every source once and print the inventory."""
    from daemon.report import collect_once, print_collection

    if not args.once:
        print("certmon collect: only --once is supported; use `certmon run` for the daemon", file=sys.stderr)
        return EXIT_USAGE
    settings = _settings(args)
    setup_logging(args.log_level or "ERROR")
    view = collect_once(settings)
    return print_collection(view, args.format)


def cmd_status(args: argparse.Namespace) -> int:
    """Collect once and print where things stand: sources, the rotation checklist, findings."""
    from daemon.report import collect_once, print_status

    settings = _settings(args)
    setup_logging(args.log_level or "ERROR")
    view = collect_once(settings)
    return print_status(view, args.format)


def cmd_inspect(args: argparse.Namespace) -> int:
    """Print the certificates in PEM, DER, PKCS#7 and PFX files."""
    from daemon.report import inspect_files

    return inspect_files(args.files, args.password_file, args.format)


def cmd_check_config(args: argparse.Namespace) -> int:
    """Validate the configuration and say what would be collected."""
    from daemon.report import check_config

    settings = _settings(args)
    return check_config(settings, args.format)


def cmd_demo(args: argparse.Namespace) -> int:
    """Generate the lab environment and run the daemon on it, or move a running demo to another stage."""
    from daemon.demo import DemoOptions, run_demo, set_stage

    if args.set_stage:
        return set_stage(args.dir, args.set_stage)
    setup_logging(args.log_level or "INFO")
    return run_demo(
        DemoOptions(
            directory=args.dir,
            port=args.port,
            stage=args.stage,
            run=not args.no_run,
            speed=args.speed,
            sf_upgrade_seconds=args.sf_upgrade_seconds,
        )
    )


def _add_format(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--format", choices=("table", "json"), default="table", help="output format")


def build_parser() -> argparse.ArgumentParser:
    """The argument parser with every sub-command."""
    parser = argparse.ArgumentParser(
        prog="certmon", description="Certificate monitor for D365 F&O on-premises and Windows estates."
    )
    parser.add_argument("--version", action="version", version=f"certmon {__version__}")
    parser.add_argument("--config", "-c", help="YAML configuration file (default: certmon.yaml or $CERTMON_CONFIG)")
    parser.add_argument("--log-level", choices=("DEBUG", "INFO", "WARNING", "ERROR"), help="log verbosity")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")

    sub = commands.add_parser("run", help="run the daemon")
    sub.set_defaults(func=cmd_run)

    sub = commands.add_parser("collect", help="collect every source once")
    sub.add_argument("--once", action="store_true", help="collect once and exit")
    _add_format(sub)
    sub.set_defaults(func=cmd_collect)

    sub = commands.add_parser("status", help="sources, the rotation checklist and findings")
    _add_format(sub)
    sub.set_defaults(func=cmd_status)

    sub = commands.add_parser("inspect", help="certificates in PEM/DER/PKCS#7/PFX files")
    sub.add_argument("files", nargs="+", metavar="FILE")
    sub.add_argument("--password-file", help="file whose first line is the PFX password")
    _add_format(sub)
    sub.set_defaults(func=cmd_inspect)

    sub = commands.add_parser("check-config", help="validate the configuration")
    _add_format(sub)
    sub.set_defaults(func=cmd_check_config)

    from simulator.lab import STAGES

    sub = commands.add_parser(
        "demo",
        help="run a simulated environment at a rotation stage, with the daemon on it",
        description="Generate the lab environment (Windows nodes over WinRM, Service Fabric gateway, AD FS, TLS "
        "endpoints, SQL databases, agent share), bring it to a rotation stage and run the daemon on it. With "
        "--set-stage, move the demo already running in --dir to another stage.",
    )
    sub.add_argument("--dir", type=Path, help="folder for the lab (default: a new temporary folder)")
    sub.add_argument("--port", type=int, default=9877, help="exporter port (default 9877; the status page is +1)")
    sub.add_argument(
        "--stage",
        default="staged",
        choices=STAGES,
        metavar="STAGE",
        help=f"rotation stage (default staged): {', '.join(STAGES)}",
    )
    sub.add_argument(
        "--speed",
        type=float,
        default=1.0,
        metavar="N",
        help="time runs N times as fast: certmon's clock, collection intervals, upgrades, the re-encryption job",
    )
    sub.add_argument("--no-run", action="store_true", help="only bring the lab to the stage, then stop")
    sub.add_argument(
        "--set-stage",
        choices=STAGES,
        metavar="STAGE",
        help="move the demo running in --dir to this stage and wait until it is there",
    )
    sub.add_argument(
        "--sf-upgrade-seconds",
        type=float,
        default=20.0,
        metavar="S",
        help="simulated seconds the cluster spends on each upgrade domain of a configuration upgrade (default 20)",
    )
    sub.set_defaults(func=cmd_demo)

    register_remediate(commands)
    for register in EXTRA_COMMANDS:
        register(commands)
    return parser


# Later capabilities add their sub-commands here: one function taking the sub-parsers.
EXTRA_COMMANDS: list[Callable[[argparse._SubParsersAction[argparse.ArgumentParser]], None]] = []


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the `certmon` console script."""
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help(sys.stderr)
        return EXIT_USAGE
    args.config_required = args.config is not None
    try:
        code = int(args.func(args))
        sys.stdout.flush()  # inside the try: a reader that went away shows here, not at interpreter exit
        return code
    except BrokenPipeError:
        # `certmon status | head`: the reader has what it wanted; end quietly like other command-line tools.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return EXIT_FINDINGS
    except ConfigError as err:
        print(f"certmon: configuration error:\n{err}", file=sys.stderr)
        return EXIT_USAGE
    except CertmonError as err:
        print(f"certmon: {err}", file=sys.stderr)
        # A state store that cannot be used at start (corrupt, in use by another daemon) exits 2.
        return int(getattr(err, "exit_code", EXIT_FINDINGS))
    except KeyboardInterrupt:
        return 130
