"""A `certmon remediate NAME --apply` that a crash test can kill at a step counted from the change.

The child does what `cmd_remediate` does before the apply, with the same functions (load the
settings, build the daemon, collect once, build the engine and the context), reports `ready`,
and waits for `go` and a kill step. Only then does it arm its step counter (`killpoints`), call
`Engine.apply`, send the result with the steps it counted, and stop the daemon. The kill step
counts from `go`, so the kills spread over the apply itself (lock, recovery, plan, journal,
backups, writes, remote calls, verification, re-collection, audit) instead of over the
interpreter's start-up and the collection, and land at the same step however busy the machine is. Children are forked from a
`multiprocessing` fork server that has imported certmon once, which makes a child cheap enough
for hundreds of kills. Nothing in the product knows it is being tested.
"""

from __future__ import annotations

import dataclasses
import importlib
import multiprocessing
import pkgutil
from multiprocessing.connection import Connection
from multiprocessing.context import ForkServerContext
from pathlib import Path

from daemon.app import Daemon
from daemon.remediation import remediation_context, remediation_engine
from daemon.settings import load_settings
from remediations.registry import get_remediation
from remediations.sfgates import OVERRIDE_OPTION
from tests.reliability.killpoints import StepCounter


def apply_when_told(conn: Connection, config: str, name: str) -> None:
    """Collect, say `ready`, wait for `go` and a kill step (None: none), apply; send the result and the steps."""
    counter = StepCounter()
    daemon = Daemon(load_settings(Path(config)))
    try:
        daemon.collect_once()
        engine = remediation_engine(daemon, 30.0, actor="crash-test")
        ctx = remediation_context(daemon, progress=lambda _text: None)
        # The crash lab has no Service Fabric gateway: the operator's override stands in for its evidence.
        ctx = dataclasses.replace(ctx, options={**ctx.options, OVERRIDE_OPTION: True})
        remediation = get_remediation(name)
        conn.send("ready")
        command, kill_at = conn.recv()
        if command != "go":
            return
        counter.profile()
        counter.arm(kill_at)
        result = engine.apply(remediation, ctx).to_dict()
        calibration = counter.disarm()
        conn.send((result, calibration))
    finally:
        daemon.stop()


def _import_everything() -> None:
    """certmon imports many modules where they are first used; import them once, in the fork server."""
    for package in ("collectors", "remediations", "daemon"):
        module = importlib.import_module(package)
        for info in pkgutil.walk_packages(module.__path__, f"{package}."):
            if not info.name.endswith("__main__"):
                importlib.import_module(info.name)


def fork_server() -> ForkServerContext:
    """A fork-server context whose server has imported certmon (and this module) already."""
    context = multiprocessing.get_context("forkserver")
    context.set_forkserver_preload([__name__])
    return context


_import_everything()
