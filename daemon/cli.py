"""The `certmon` command line."""

from __future__ import annotations

import argparse
import logging
import os
import sys
from collections.abc import Callable, Sequence
from importlib.metadata import EntryPoint, entry_points
from pathlib import Path
from typing import TYPE_CHECKING

from collectors.errors import CertmonError
from daemon import __version__
from daemon.logs import LOG_FORMATS, EventLogUnavailable, setup_logging

if TYPE_CHECKING:
    from daemon.settings import Settings
    from daemon.view import View

# `certmon --version` and `certmon inspect` import only what they use (no settings, scheduler,
# WinRM or simulator modules); every other command imports its own modules when it runs.

EXIT_OK, EXIT_FINDINGS, EXIT_USAGE = 0, 1, 2

log = logging.getLogger("certmon.cli")

#: entry-point group of sub-commands from other distributions: `name = "module:function"`, the function
#: taking the command's own arguments and the parsed global options, returning the exit code
PLUGIN_GROUP = "certmon.commands"
PluginCommand = Callable[[list[str], argparse.Namespace], int]

Runner = Callable[[argparse.Namespace], int]


def _settings(args: argparse.Namespace) -> Settings:
    # Imported here: the settings pull in every source's collector, which --help, --version and inspect need not.
    from daemon.flags import apply_flags
    from daemon.settings import load_settings

    settings = load_settings(args.config, required=args.config_required)
    apply_flags(settings, args)
    return settings


def _logging(args: argparse.Namespace, level: str, settings: Settings | None = None) -> None:
    fmt = args.log_format or (settings.log_format if settings is not None else "text")
    try:
        setup_logging(args.log_level or level, fmt, event_log=args.log_eventlog)
    except EventLogUnavailable as err:
        from daemon.settings import ConfigError

        raise ConfigError(str(err)) from err


def cmd_run(args: argparse.Namespace) -> int:
    """Run the daemon until SIGTERM or Ctrl+C; SIGHUP re-reads the configuration."""
    from daemon.service import Service

    settings = _settings(args)
    _logging(args, settings.log_level, settings)
    Service(lambda: _settings(args), settings).run()
    return EXIT_OK


def cmd_collect(args: argparse.Namespace) -> int:
    """Collect every source once and print the inventory."""
    from daemon.report import collect_once, print_collection

    if not args.once:
        print("certmon collect: only --once is supported; use `certmon run` for the daemon", file=sys.stderr)
        return EXIT_USAGE
    settings = _settings(args)
    _logging(args, "ERROR", settings)
    view = collect_once(settings)
    return print_collection(view, args.format)


def cmd_status(args: argparse.Namespace) -> int:
    """Collect once and print where things stand: sources, the rotation checklist, findings."""
    from daemon.report import collect_once, print_status

    settings = _settings(args)
    _logging(args, "ERROR", settings)
    view = collect_once(settings)
    if args.evidence is not None:
        written = write_evidence(view, settings, args.evidence)
        print(f"evidence bundle: {', '.join(str(p) for p in written)}", file=sys.stderr)
    return print_status(view, args.format)


def write_evidence(view: View, settings: Settings, directory: Path) -> list[Path]:
    """`status --evidence DIR`: the change ticket's bundle from this collection and the audit file."""
    from datetime import UTC, datetime

    from daemon.evidencebundle import BundleError, applied_remediations, build_bundle, bundle_document, write_bundle
    from daemon.payloads import collection_payload, status_payload
    from daemon.settings import ConfigError
    from remediations.audit import AUDIT_FILE

    collection = collection_payload(view)
    status = status_payload(view, collection)
    document = bundle_document(status, collection["certificates"], view.evaluation.references)
    files = build_bundle(document, applied_remediations(settings.data_dir / AUDIT_FILE), datetime.now(UTC))
    try:
        return write_bundle(files, directory)
    except (BundleError, OSError) as err:
        raise ConfigError(f"--evidence: {err}") from err


def cmd_inspect(args: argparse.Namespace) -> int:
    """Print the certificates in PEM, DER, PKCS#7 and PFX files."""
    from daemon.inspectcmd import inspect_files

    return inspect_files(args.files, args.password_file, args.format)


def cmd_check_config(args: argparse.Namespace) -> int:
    """Validate the configuration and say what would be collected."""
    from daemon.report import check_config

    settings = _settings(args)
    return check_config(settings, args.format)


def _add_format(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--format", choices=("table", "json"), default="table", help="output format")


def _inspect_arguments(sub: argparse.ArgumentParser) -> None:
    sub.add_argument("files", nargs="+", metavar="FILE")
    sub.add_argument("--password-file", help="file whose first line is the PFX password")
    _add_format(sub)
    sub.set_defaults(func=cmd_inspect)


def build_parser() -> argparse.ArgumentParser:
    """The argument parser with every sub-command."""
    parser = argparse.ArgumentParser(
        prog="certmon", description="Certificate monitor for D365 F&O on-premises and Windows estates."
    )
    parser.add_argument("--version", action="version", version=f"certmon {__version__}")
    parser.add_argument("--config", "-c", help="YAML configuration file (default: certmon.yaml or $CERTMON_CONFIG)")
    levels = ("DEBUG", "INFO", "WARNING", "ERROR")
    parser.add_argument(
        "--log.level", "--log-level", dest="log_level", type=str.upper, choices=levels, help="log verbosity"
    )
    parser.add_argument(
        "--log.format", dest="log_format", choices=LOG_FORMATS, help="log format on stderr (default: log_format, text)"
    )
    parser.add_argument(
        "--log.eventlog", dest="log_eventlog", action="store_true", help="also log to the Windows Event Log (pywin32)"
    )
    parser.add_argument(
        "--web.listen-address",
        dest="web_listen_address",
        metavar="HOST:PORT",
        help="exporter address, overrides exporter.listen_address/port (e.g. 127.0.0.1:9877)",
    )
    parser.add_argument(
        "--web.config.file",
        dest="web_config_file",
        metavar="FILE",
        help="exporter-toolkit web config (TLS, client certificates, basic auth), overrides exporter.web_config_file",
    )
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")

    sub = commands.add_parser("run", help="run the daemon")
    sub.set_defaults(func=cmd_run)

    sub = commands.add_parser("collect", help="collect every source once")
    sub.add_argument("--once", action="store_true", help="collect once and exit")
    _add_format(sub)
    sub.set_defaults(func=cmd_collect)

    sub = commands.add_parser("status", help="sources, the rotation checklist and findings")
    _add_format(sub)
    sub.add_argument(
        "--evidence",
        type=Path,
        metavar="DIR",
        help="also write the change ticket's evidence bundle (HTML, JSON, SHA-256 manifest) into DIR (new or empty)",
    )
    sub.set_defaults(func=cmd_status)

    _inspect_arguments(commands.add_parser("inspect", help="certificates in PEM/DER/PKCS#7/PFX files"))

    sub = commands.add_parser("check-config", help="validate the configuration")
    _add_format(sub)
    sub.set_defaults(func=cmd_check_config)

    from daemon.remediate import register_remediate

    register_remediate(commands)
    for entry in plugin_commands():
        if entry.name not in commands.choices:
            sub = commands.add_parser(entry.name, help=_plugin_help(entry), add_help=False)
            sub.set_defaults(func=None, plugin=entry)
    return parser


def plugin_commands() -> list[EntryPoint]:
    """Sub-commands other installed distributions provide (`certmon demo` comes with certmon-simulator).

    Only their names and distributions are read here; a plugin's module is imported when its command runs,
    so `certmon run` never loads the simulator.
    """
    return sorted(entry_points(group=PLUGIN_GROUP), key=lambda entry: entry.name)


def _plugin_help(entry: EntryPoint) -> str:
    summary = entry.dist.metadata["Summary"] if entry.dist is not None else ""
    where = entry.dist.name if entry.dist is not None else entry.value
    return f"{summary} ({where})" if summary else f"provided by {where}"


def _run_plugin(entry: EntryPoint, argv: list[str], args: argparse.Namespace) -> int:
    command: PluginCommand = entry.load()
    return command(argv, args)


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the `certmon` console script."""
    words = list(sys.argv[1:] if argv is None else argv)
    if words == ["--version"]:
        print(f"certmon {__version__}")
        return EXIT_OK
    plugin: EntryPoint | None = None
    extra: list[str] = []
    if words[:1] == ["inspect"]:
        # The fast path: the same arguments as the full parser's `inspect`, without building the others.
        quick = argparse.ArgumentParser(prog="certmon inspect", description="Certificates in PEM/DER/PKCS#7/PFX files.")
        _inspect_arguments(quick)
        args = quick.parse_args(words[1:])
    else:
        parser = build_parser()
        args, extra = parser.parse_known_args(words)
        plugin = getattr(args, "plugin", None)
        if extra and plugin is None:
            parser.error(f"unrecognized arguments: {' '.join(extra)}")
        if not getattr(args, "func", None) and plugin is None:
            parser.print_help(sys.stderr)
            return EXIT_USAGE
    args.config_required = getattr(args, "config", None) is not None
    try:
        code = _run_plugin(plugin, extra, args) if plugin is not None else int(args.func(args))
        sys.stdout.flush()  # inside the try: a reader that went away shows here, not at interpreter exit
        return code
    except BrokenPipeError:
        # `certmon status | head`: the reader has what it wanted; end quietly like other command-line tools.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return EXIT_FINDINGS
    except CertmonError as err:
        from daemon.settings import ConfigError

        if isinstance(err, ConfigError):
            text = str(err)
            print(f"certmon: configuration error:{chr(10) if chr(10) in text else ' '}{text}", file=sys.stderr)
            return EXIT_USAGE
        print(f"certmon: {err}", file=sys.stderr)
        # A state store that cannot be used at start (corrupt, in use by another daemon) exits 2.
        return int(getattr(err, "exit_code", EXIT_FINDINGS))
    except KeyboardInterrupt:
        return 130
