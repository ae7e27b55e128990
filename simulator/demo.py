"""`certmon demo`: the lab environment, its simulated peers and the daemon, at a chosen rotation stage.

The lab is generated before or staged (`simulator.lab`); later stages are reached by walking
the runbook on the running lab (`simulator.stages`), certmon's own remediations included. With
`--speed N` time runs N times as fast: certmon's clock (`simulated_time` in the lab's
certmon.yaml, so `certmon status` and `certmon remediate` agree with the daemon), the
collection intervals, the cluster's upgrade walk and the re-encryption batch job. A running
demo moves to another stage with `certmon demo --dir D --set-stage STAGE`.
"""

from __future__ import annotations

import contextlib
import dataclasses
import secrets
import signal
import sys
import tempfile
import threading
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from types import FrameType
from typing import Any

from daemon.app import Daemon
from daemon.clock import ScaledClock
from daemon.malloctune import tune_malloc
from daemon.remediation import remediation_context, remediation_engine
from daemon.settings import load_settings
from simulator.control import ControlError, StageControl, StageLog, request_stage
from simulator.lab import Lab, build_lab, edit_config, write_config
from simulator.labmodel import BUILT_STAGES, STAGES
from simulator.secretfile import write_secret
from simulator.services import LabServices
from simulator.stages import LabRotation, StageError
from simulator.winrm import SimulatedFleet

#: shortest collection interval the demo schedules, whatever the speed (real seconds)
MIN_INTERVAL_SECONDS = 2.0
ACTOR = "certmon-demo"
API_TOKEN_FILE = "secrets/api-token.txt"  # noqa: S105 - where the token is, not the token


def _say(text: str) -> None:
    print(text, flush=True)


@dataclass(frozen=True)
class DemoOptions:
    """What `certmon demo` was asked for."""

    directory: Path | None = None
    port: int = 9877
    stage: str = "staged"
    run: bool = True
    speed: float = 1.0
    sf_upgrade_seconds: float = 20.0


def scale_schedule(config: dict[str, Any], speed: float) -> None:
    """Divide every source's collection interval (and jitter) by the speed, down to MIN_INTERVAL_SECONDS."""
    for section in config.get("sources", {}).values():
        if isinstance(section, dict) and "interval_seconds" in section:
            interval = max(float(section["interval_seconds"]) / speed, MIN_INTERVAL_SECONDS)
            section["interval_seconds"] = round(interval, 3)
            section["jitter_seconds"] = round(interval / 10, 3)


class DemoOperator:
    """certmon as the stage walk operates it: the running daemon's remediations, and a restart."""

    def __init__(self, daemon: Daemon, config: Path, say: StageLog, *, serve: bool = True) -> None:
        self.daemon = daemon
        self.config = config
        self.say = say
        self.serve = serve
        self._lock = threading.Lock()

    def remediate(self, name: str, *, start_upgrade: bool = True) -> str:
        """Collect afresh, then apply the remediation through the engine (audited as certmon-demo)."""
        from remediations.outcome import Outcome
        from remediations.registry import get_remediation
        from remediations.sfgateway import OPTION

        with self._lock:
            daemon = self.daemon
            daemon.collect_once()
            engine = remediation_engine(daemon, actor=ACTOR)
            ctx = remediation_context(daemon, progress=lambda text: self.say.add(f"  {text}"))
            if not start_upgrade:
                ctx = dataclasses.replace(ctx, options={k: v for k, v in ctx.options.items() if k != OPTION})
            result = engine.apply(get_remediation(name), ctx)
        if result.outcome not in (Outcome.APPLIED, Outcome.NOTHING_TO_DO):
            failed = "; ".join(f"{c.name}: {c.detail}" for c in result.checks if not c.ok)
            raise StageError(f"{name}: {result.outcome}: {result.message}" + (f" ({failed})" if failed else ""))
        return f"certmon remediate {name} --apply: {result.outcome}: {result.message}"

    def stop(self) -> None:
        """Stop the daemon (whichever one runs after reloads)."""
        with self._lock:
            self.daemon.stop()

    def reload(self) -> None:
        """Restart the daemon on the changed configuration, on the same ports."""
        with self._lock:
            self.daemon.stop()
            self.daemon = start_daemon(self.config, serve=self.serve)


def start_daemon(config: Path, *, serve: bool = True) -> Daemon:
    """A daemon on the lab's configuration, scheduled, and serving unless only the stage walk needs it."""
    daemon = Daemon(load_settings(config))
    daemon.start(serve=serve)
    return daemon


def _pin_ports(lab: Lab, daemon: Daemon) -> None:
    """Write the bound ports into certmon.yaml, so that a restart (and Prometheus) finds the same ones."""
    assert daemon.http is not None
    exporter_port = daemon.http.port
    api_port = daemon.api.http.port if daemon.api is not None and daemon.api.http is not None else None

    def pin(config: dict[str, Any]) -> None:
        config.setdefault("exporter", {})["port"] = exporter_port
        if api_port is not None:
            config.setdefault("api", {})["port"] = api_port

    edit_config(lab, pin)


def _demo_config(lab: Lab, options: DemoOptions, since: datetime) -> None:
    """The API token, simulated time and the scaled schedule in the lab's certmon.yaml."""
    token = lab.root / API_TOKEN_FILE
    write_secret(token, secrets.token_urlsafe(24) + "\n")

    def change(config: dict[str, Any]) -> None:
        config.setdefault("api", {})["token_file"] = API_TOKEN_FILE
        if options.speed != 1:
            config["simulated_time"] = {"speed": options.speed, "since": since.isoformat()}
        scale_schedule(config, options.speed)

    edit_config(lab, change)


@contextmanager
def _signals(stop: threading.Event) -> Iterator[None]:
    """SIGTERM, SIGINT (Ctrl+C) and, on Windows, Ctrl+Break end the demo."""

    def handler(signum: int, frame: FrameType | None) -> None:
        stop.set()

    names = [n for n in ("SIGTERM", "SIGINT", "SIGBREAK") if hasattr(signal, n)]
    previous = {n: signal.signal(getattr(signal, n), handler) for n in names}
    try:
        yield
    finally:
        for name, old in previous.items():
            signal.signal(getattr(signal, name), old)


class Demo:
    """A running demo: the lab, its simulated peers, the daemon, the stage walk and the control endpoint.

    A context manager; `certmon demo` runs one until a signal, the end-to-end tests run one in-process.
    Entering it brings the lab to `options.stage` (StageError when it cannot); with `options.run`
    false it stops there, without the control endpoint.
    """

    def __init__(self, options: DemoOptions, echo: Callable[[str], None] = _say) -> None:
        self.options = options
        self.since = datetime.now(UTC).replace(microsecond=0)
        self.clock = ScaledClock(options.speed, self.since)
        self.log = StageLog(echo=echo)
        self._echo = echo
        self._stack = ExitStack()
        self.lab: Lab | None = None
        self.operator: DemoOperator | None = None
        self.rotation: LabRotation | None = None
        self.control: StageControl | None = None
        self.urls: dict[str, str] = {}

    @property
    def daemon(self) -> Daemon:
        """The daemon running now (a stage move may have restarted it)."""
        assert self.operator is not None, "the demo is not running"
        return self.operator.daemon

    def start(self) -> Demo:
        """Generate the lab, start its peers and the daemon, walk to the stage, open the control endpoint."""
        try:
            self._start()
        except BaseException:
            self.close()
            raise
        return self

    def _start(self) -> None:
        options, stack, say = self.options, self._stack, self._echo
        root = options.directory or Path(tempfile.mkdtemp(prefix="certmon-demo-"))
        built = options.stage if options.stage in BUILT_STAGES else BUILT_STAGES[-1]
        lab = self.lab = build_lab(root, stage=built, port=options.port, now=self.since)
        say(f"lab environment generated in {lab.root}")
        say(f"configuration: {lab.config_file}")
        if not options.run and options.stage in BUILT_STAGES:
            return
        # One simulated Windows node per VM (read over WinRM, NTLM with encryption), and the AD FS,
        # TLS, SQL Server and Service Fabric gateway endpoints, all on loopback.
        fleet = stack.enter_context(SimulatedFleet.from_lab(lab))
        services = stack.enter_context(
            LabServices(lab, sf_upgrade_seconds=options.sf_upgrade_seconds, clock=self.clock)
        )
        write_config(lab, options.port, fleet.addresses())
        services.write_config()
        _demo_config(lab, options, self.since)
        say(f"simulated Windows nodes: {', '.join(f'{n} {a}' for n, a in fleet.addresses().items())}")
        say(
            f"simulated AD FS, TLS, SQL Server and Service Fabric gateway on {', '.join(services.hosts)}: "
            f"{services.summary()}"
        )
        say(
            f"embedded AXDB and OrchestratorData (SQLite): {lab.axdb_file.parent}; agent share with config.json "
            f"and Credentials.json: {lab.agent_share}"
        )
        # --no-run only walks the lab to the stage: no listener, so no port is taken.
        daemon = start_daemon(lab.config_file, serve=options.run)
        self.operator = DemoOperator(daemon, lab.config_file, self.log, serve=options.run)
        stack.callback(self.operator.stop)
        if options.run:
            _pin_ports(lab, daemon)
        self.rotation = LabRotation(lab, services, self.operator, self.clock, say=self.log.add)
        stack.callback(self.rotation.close)
        self.rotation.move_to(options.stage, fast=True)
        if not options.run:
            return
        self.control = stack.enter_context(StageControl(self.rotation, self.log))
        daemon = self.daemon
        assert daemon.http is not None
        self.urls = {"metrics": f"{daemon.http.url}/metrics"}
        if daemon.api is not None:
            self.urls["status_page"] = f"{daemon.api.url}/"
        stack.callback(self.control.write_file(lab.root, **self.urls).unlink, missing_ok=True)

    def close(self) -> None:
        """Stop everything the demo started, in reverse order."""
        self._stack.close()

    def __enter__(self) -> Demo:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.close()


def run_demo(options: DemoOptions) -> int:
    """Build the lab (in a new temporary folder unless one is given), bring it to the stage, run it."""
    if options.stage not in STAGES:
        print(f"certmon demo: unknown stage {options.stage!r}; choose one of {', '.join(STAGES)}", file=sys.stderr)
        return 2
    if options.speed <= 0:
        print("certmon demo: --speed must be positive", file=sys.stderr)
        return 2
    if options.run:
        tune_malloc()  # a long-running daemon, as with certmon run
    try:
        demo = Demo(options).start()
    except StageError as err:
        print(f"certmon demo: cannot bring the lab to {options.stage}: {err}", file=sys.stderr)
        return 1
    with contextlib.closing(demo):
        if not options.run:
            return 0
        assert demo.lab is not None
        speed = f", time x{options.speed:g}" if options.speed != 1 else ""
        print(f"stage {demo.lab.stage}{speed}; move it with: certmon demo --dir {demo.lab.root} --set-stage STAGE")
        if "status_page" in demo.urls:
            print(f"status page: {demo.urls['status_page']}   API token: {demo.lab.root / API_TOKEN_FILE}")
        print(f"metrics: {demo.urls['metrics']}   (Ctrl+C to stop)", flush=True)
        stop = threading.Event()
        with _signals(stop):
            while not stop.wait(1.0):
                pass
        print("stopping", flush=True)
    return 0


def set_stage(directory: Path | None, stage: str) -> int:
    """`certmon demo --dir D --set-stage STAGE`: move the demo running in D and wait until it is there."""
    if directory is None:
        print("certmon demo: --set-stage needs the --dir of the running demo", file=sys.stderr)
        return 2
    if stage not in STAGES:
        print(f"certmon demo: unknown stage {stage!r}; choose one of {', '.join(STAGES)}", file=sys.stderr)
        return 2
    try:
        reached = request_stage(directory, stage, sys.stdout)
    except ControlError as err:
        print(f"certmon demo: {err}", file=sys.stderr)
        return 1
    print(f"the demo in {directory} is at stage {reached}")
    return 0
