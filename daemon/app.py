"""The daemon: wires collectors, runner, state store, evaluator, exporter and scheduler together."""

from __future__ import annotations

import gc
import logging
import threading
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from datetime import timedelta
from typing import TYPE_CHECKING

from prometheus_client import CollectorRegistry, ProcessCollector
from prometheus_client.core import Metric

from collectors.base import Collector
from collectors.model import Observation, Snapshot, SourceResult
from collectors.sql import SqlCollector
from daemon.clock import settings_clock
from daemon.clockwatch import clock_families
from daemon.datalock import DataDirLock
from daemon.evaluator import evaluate
from daemon.exposition import render_exposition
from daemon.findinglog import FindingLog
from daemon.history import StoreHistory
from daemon.http import HttpServer, Request, Response, Router, exposition_handler
from daemon.landing import HEADERS as LANDING_HEADERS
from daemon.landing import landing_page
from daemon.metrics import build_families
from daemon.preflight import preflight_payload
from daemon.retention import RetentionSchedule
from daemon.runner import Clock, Runner
from daemon.scheduler import Scheduler
from daemon.settings import ConfigError, Settings
from daemon.sources.registry import build_collectors, keep_history
from daemon.state import StateError, StateStore
from daemon.stateschema import LocationHistory
from daemon.storemetrics import store_families
from daemon.view import View
from daemon.webconfig import load_web_config

if TYPE_CHECKING:
    from daemon.api import ApiServer

log = logging.getLogger("certmon")


@contextmanager
def _without_gc_pauses() -> Iterator[None]:
    """Hold the cyclic garbage collector during an evaluation.

    An evaluation allocates hundreds of thousands of short-lived, acyclic objects (freed by
    reference counting); with tens of thousands of certificates alive, each full collection the
    allocations trigger walks all of them, which doubled the evaluation time at 50,000
    certificates in one store (bench_scale.py). Collections resume right after.
    """
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


class LatestCollector:
    """prometheus_client custom collector that only reads the latest view: no I/O on scrape."""

    def __init__(self, daemon: Daemon) -> None:
        self._daemon = daemon

    def collect(self) -> Iterable[Metric]:
        """The families of the latest view."""
        return self._daemon.view.families


class Daemon:
    """One environment's collection, evaluation and exposition."""

    def __init__(
        self,
        settings: Settings,
        collectors: Sequence[Collector] | None = None,
        clock: Clock | None = None,
    ) -> None:
        self.settings = settings
        #: the wall clock, or the demo's simulated time when the configuration asks for it
        self.clock: Clock = clock or settings_clock(settings)
        self.on_progress: Callable[[str, str, bool], None] | None = None
        # audit.jsonl (remediations.audit.AUDIT_FILE) is the durable audit copy a new store re-imports.
        self.store = StateStore(settings.data_dir, audit_file=settings.data_dir / "audit.jsonl")
        self._removals: dict[tuple[str, tuple[str, ...]], list[LocationHistory]] = {}
        self._retention = RetentionSchedule(settings.retention)
        chosen = list(collectors) if collectors is not None else build_collectors(settings)
        keep_history(chosen, self.store, self.clock)
        self.runner = Runner(settings.environment, chosen, self.clock, on_target_done=self._target_done)
        self._publish_lock = threading.Lock()
        self._finding_log: FindingLog | None = None
        self._process = ProcessCollector(registry=None)
        self.view = self._evaluate()
        self.registry = CollectorRegistry(auto_describe=False)
        self.registry.register(LatestCollector(self))
        self.router = Router()
        self.router.add("GET", "/metrics", exposition_handler(lambda: self.view.exposition))
        self.router.add("GET", "/healthz", self._healthz)
        self.router.add("GET", "/", self._landing)
        self.http: HttpServer | None = None
        #: the status page and remediation API (`api:`), on their own listener
        self.api: ApiServer | None = None
        self.scheduler: Scheduler | None = None
        self._data_lock: DataDirLock | None = None

    @property
    def collectors(self) -> dict[str, Collector]:
        """Collectors by source name."""
        return self.runner.collectors

    def _target_done(self, collector: Collector, result: SourceResult, observation: Observation | None) -> None:
        if self.on_progress is not None:
            self.on_progress(collector.name, result.target, result.health.ok)
        if observation is None:
            return
        try:
            self.store.record_locations(collector.name, result.target, observation.certificates, self.clock())
        except StateError as err:
            log.error("%s", err)

    def _evaluate(self) -> View:
        self.store.check()
        snapshot = self.runner.snapshot()
        if self.store.recreated:
            # A new store replaced a corrupt one: what is known now goes in again.
            self.store.recreated = False
            for result in snapshot:
                if result.observation is not None:
                    self.store.record_locations(
                        result.source, result.target, result.observation.certificates, snapshot.taken_at
                    )
        history = StoreHistory(self.store, self._removals)
        evaluation = evaluate(snapshot, history, self.clock(), self.settings)
        if self._complete(snapshot):
            # Only with every source's references known: a certificate still named must not lose its history.
            keep = {r.thumbprint for r in evaluation.references if r.thumbprint}
            self._retention.run(self.store, evaluation.evaluated_at, keep, self._progress_needed())
        # process_* (CPU, memory, open files, start time; /proc, Linux only) as of this evaluation: the
        # exposition is rendered once per evaluation, so they are too.
        families = tuple(build_families(evaluation, self.runner.collectors, self.settings))
        families += tuple(store_families(self.settings.environment, self.store.status()))
        scheduler = getattr(self, "scheduler", None)  # None during the first evaluation, in __init__
        steps = scheduler.clock_watch.steps() if scheduler is not None else {}
        families += tuple(clock_families(self.settings.environment, steps))
        families += tuple(self._process.collect())
        # The view still served (none during the first evaluation, in __init__): unchanged parts are shared with it.
        previous = getattr(self, "view", None)
        exposition = render_exposition(families, previous.exposition if previous is not None else None)
        return View(evaluation, families, exposition, preflight_payload(evaluation, self.settings))

    def _complete(self, snapshot: Snapshot) -> bool:
        """True when every source has data (its latest, or its last good collection)."""
        with_data = {r.source for r in snapshot if r.observation is not None}
        return bool(self.runner.collectors) and with_data >= set(self.runner.collectors)

    def _progress_needed(self) -> timedelta:
        policies = [c.options.policy for c in self.runner.collectors.values() if isinstance(c, SqlCollector)]
        return max((max(p.rate_window, p.stall_after) for p in policies), default=timedelta(0))

    def publish(self) -> View:
        """Re-evaluate the latest results and swap in the new view."""
        with self._publish_lock, _without_gc_pauses():
            self.view = self._evaluate()
            # Until every source has reported once, findings of the sources still to come would be logged as
            # cleared (and raised again a minute later): the log starts when the picture is whole.
            if self._finding_log is not None and self.runner.every_source_reported():
                self._finding_log.update(self.view.evaluation.findings)
        return self.view

    def collect_source(self, name: str) -> None:
        """One scheduled cycle of one source, then a new view."""
        self.runner.run_source(name)
        self.publish()

    def log_findings(self, previous: Daemon | None = None) -> None:
        """From the next evaluation on, log every finding raised and cleared (the service; one-shot commands print).

        `previous`: the daemon this one replaces (a configuration reload); its active findings are not
        logged again as raised.
        """
        if previous is not None and previous._finding_log is not None:
            self._finding_log = previous._finding_log
        if self._finding_log is None:
            self._finding_log = FindingLog()

    def collect_once(self) -> View:
        """Collect every source once and publish."""
        self.runner.run_once()
        return self.publish()

    def _landing(self, request: Request) -> Response:
        status_url = self.api.url + "/" if self.api is not None else None
        return Response.html(landing_page(self.settings.environment, status_url), headers=LANDING_HEADERS)

    def _healthz(self, request: Request) -> Response:
        running = self.scheduler is not None and self.scheduler.running
        if not running and self.scheduler is not None:
            return Response.json({"status": "stopping"}, 503)
        store = self.store.status()
        if not store.up:
            # Collection goes on in memory, but what the daemon must remember is not being kept.
            return Response.json({"status": "degraded", "state_store": str(store.fault), "message": store.message}, 503)
        return Response.json({"status": "ok"}, 200)

    def start(self, *, serve: bool = True, schedule: bool = True) -> None:
        """Start the HTTP listener and the schedule (first cycle of every source right away)."""
        if schedule and self._data_lock is None:
            lock = DataDirLock(self.settings.data_dir)
            lock.acquire()  # raises DataDirInUse when another daemon runs on the folder
            self._data_lock = lock
        if serve:
            exporter = self.settings.exporter
            web_config = load_web_config(exporter.web_config_file)
            api = self._api() if self.settings.api.enabled else None
            try:
                self.http = HttpServer(exporter.listen_address, exporter.port, web_config, self.router)
            except OSError as err:
                raise ConfigError(
                    f"exporter.listen_address/exporter.port: cannot listen on {exporter.listen_address}:"
                    f"{exporter.port}: {err.strerror or err}; stop what uses it or choose another port "
                    "(--web.listen-address)"
                ) from err
            self.http.start()
            log.info("serving %s/metrics", self.http.url)
            if api is not None:
                try:
                    api.start()
                except Exception:
                    self.http.stop()
                    self.http = None
                    raise
                self.api = api
                log.info("status page %s/ and remediation API %s/api/", api.url, api.url)
        if schedule:
            self.log_findings()
            self.scheduler = Scheduler(self)
            self.scheduler.start()

    def _api(self) -> ApiServer:
        from daemon.api import ApiServer

        return ApiServer(self)

    def stop(self) -> None:
        """Stop scheduling and serving (a running apply finishes first); close connections and the store."""
        if self.scheduler is not None:
            self.scheduler.stop()
        if self.api is not None:
            self.api.stop()
        if self.http is not None:
            self.http.stop()
        self.runner.close()
        self.store.close()
        if self._data_lock is not None:
            self._data_lock.release()
            self._data_lock = None
