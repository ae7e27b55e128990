"""`certmon demo`, the command certmon-simulator adds to certmon (entry point group `certmon.commands`).

certmon's CLI finds it by its entry point and imports this module only when `certmon demo` runs.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from daemon.logs import setup_logging
from simulator.demo import DemoOptions, run_demo, set_stage
from simulator.labmodel import STAGES


def build_parser() -> argparse.ArgumentParser:
    """The arguments of `certmon demo`."""
    parser = argparse.ArgumentParser(
        prog="certmon demo",
        description="Generate the lab environment (Windows nodes over WinRM, Service Fabric gateway, AD FS, TLS "
        "endpoints, SQL databases, agent share), bring it to a rotation stage and run the daemon on it. With "
        "--set-stage, move the demo already running in --dir to another stage.",
    )
    parser.add_argument("--dir", type=Path, help="folder for the lab (default: a new temporary folder)")
    parser.add_argument("--port", type=int, default=9877, help="exporter port (default 9877; the status page is +1)")
    parser.add_argument(
        "--stage",
        default="staged",
        choices=STAGES,
        metavar="STAGE",
        help=f"rotation stage (default staged): {', '.join(STAGES)}",
    )
    parser.add_argument(
        "--speed",
        type=float,
        default=1.0,
        metavar="N",
        help="time runs N times as fast: certmon's clock, collection intervals, upgrades, the re-encryption job",
    )
    parser.add_argument("--no-run", action="store_true", help="only bring the lab to the stage, then stop")
    parser.add_argument(
        "--set-stage",
        choices=STAGES,
        metavar="STAGE",
        help="move the demo running in --dir to this stage and wait until it is there",
    )
    parser.add_argument(
        "--sf-upgrade-seconds",
        type=float,
        default=20.0,
        metavar="S",
        help="simulated seconds the cluster spends on each upgrade domain of a configuration upgrade (default 20)",
    )
    return parser


def main(argv: list[str], options: argparse.Namespace) -> int:
    """Generate the lab environment and run the daemon on it, or move a running demo to another stage."""
    args = build_parser().parse_args(argv)
    if args.set_stage:
        return set_stage(args.dir, args.set_stage)
    setup_logging(options.log_level or "INFO")
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
