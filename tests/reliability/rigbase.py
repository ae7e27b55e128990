"""The fault-matrix rig: a daemon serving /metrics over HTTP with one source, and how faults are described.

`rigs.py` holds one rig per source; this module holds what they share.
"""

from __future__ import annotations

import os
import threading
import time
import urllib.request
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from typing import Any

import yaml
from prometheus_client.parser import text_string_to_metric_families

from collectors.errors import Reason
from daemon.app import Daemon
from daemon.settings import load_settings
from simulator.faultproxy import FaultProxy
from simulator.lab import Lab

FAULTS = ("timeout", "refused", "authentication", "tls", "5xx/soap fault", "garbage", "hang")
SOURCES = ("winrm", "servicefabric", "sql", "adfs", "tls", "files")
#: each source's deadline in these tests; a slow or silent peer costs this much
TIMEOUT = 1.5
SLOW = 4.0

NOT_APPLICABLE: dict[tuple[str, str], str] = {
    ("sql", "tls"): "the PostgreSQL stand-in has no TDS TLS; SQL Server's TLS is the tls source's tds probe",
    ("adfs", "authentication"): "federation metadata and keys are anonymous documents",
    ("tls", "authentication"): "the probe is an anonymous handshake",
    ("tls", "5xx/soap fault"): "the probe reads no application answer",
    ("files", "timeout"): "local reads have no per-call timeout; a stalled share is the hang cell",
    ("files", "authentication"): "read as the daemon's account (permission_denied: tests/collectors)",
    ("files", "tls"): "no network",
    ("files", "5xx/soap fault"): "no server",
}


@dataclass(frozen=True)
class Fault:
    """How one fault class is made for one source, what it must report, and how it is cleared."""

    how: str
    reason: Reason
    inject: Callable[[], None]
    clear: Callable[[], None]
    #: words the health message must contain
    text: str = ""


@dataclass(frozen=True)
class SourceState:
    """What the daemon's /metrics says about one source target."""

    up: float | None
    last_success: float | None
    errors: dict[str, float]
    stale_series: frozenset[tuple[tuple[str, str], ...]]


class Rig:
    """A daemon with one source, serving /metrics over HTTP, and the fault classes of that source."""

    source: str
    target = ""
    #: a metric family that carries the source's data (certificates, or facts for SQL)
    data_metric = "certmon_cert_not_after_timestamp_seconds"

    def __init__(self, lab: Lab, stack: ExitStack) -> None:
        self.lab = lab
        self.stack = stack
        self.faults: dict[str, Fault] = {}
        self.daemon: Daemon | None = None

    def start_daemon(self, section: dict[str, Any], env: dict[str, str] | None = None) -> None:
        """Write a one-source certmon.yaml in the lab and start a daemon serving /metrics (no scheduler)."""
        config = {
            "environment": "faults",
            "data_dir": f"data-{self.source}",
            "exporter": {"listen_address": "127.0.0.1", "port": 0},
            "sources": {self.source: section},
        }
        path = self.lab.root / f"faults-{self.source}.yaml"
        path.write_text(yaml.safe_dump(config, sort_keys=False), encoding="utf-8")
        saved = {k: os.environ.get(k) for k in env or {}}
        os.environ.update(env or {})
        try:
            settings = load_settings(path)
        finally:
            for key, value in saved.items():
                if value is None:
                    os.environ.pop(key, None)
                else:
                    os.environ[key] = value
        self.daemon = Daemon(settings)
        self.daemon.start(serve=True, schedule=False)
        self.stack.callback(self.daemon.stop)
        self.target = first_target(self.daemon, self.source)

    @property
    def url(self) -> str:
        """The daemon's /metrics URL."""
        assert self.daemon is not None and self.daemon.http is not None
        return self.daemon.http.url + "/metrics"

    def scrape(self) -> str:
        """GET /metrics over HTTP."""
        with urllib.request.urlopen(self.url, timeout=10) as response:
            assert response.status == 200
            return str(response.read().decode())

    def state(self, text: str | None = None) -> SourceState:
        """The source target's up, last success, errors by reason and data series, from a scrape."""
        up = last = None
        errors: dict[str, float] = {}
        series: set[tuple[tuple[str, str], ...]] = set()
        for family in text_string_to_metric_families(text if text is not None else self.scrape()):
            for sample in family.samples:
                labels = sample.labels
                mine = labels.get("source") == self.source and labels.get("target") == self.target
                if sample.name == "certmon_source_up" and mine:
                    up = sample.value
                elif sample.name == "certmon_source_last_success_timestamp_seconds" and mine:
                    last = sample.value
                elif sample.name == "certmon_source_errors_total" and mine:
                    errors[labels["reason"]] = sample.value
                elif sample.name == self.data_metric and labels.get("source", self.source) == self.source:
                    series.add(tuple(sorted(labels.items())))
        return SourceState(up, last, errors, frozenset(series))

    def collect(self) -> None:
        """One cycle of the source, as the scheduler runs it (collect, then publish)."""
        assert self.daemon is not None
        self.daemon.collect_source(self.source)

    def settle(self) -> None:
        """Wait for attempts abandoned at their deadline to end (a cleared fault releases them)."""
        assert self.daemon is not None
        end = time.monotonic() + 15
        while self.daemon.runner.overrunning(self.source) and time.monotonic() < end:
            time.sleep(0.05)
        assert not self.daemon.runner.overrunning(self.source), "an abandoned attempt never ended"


def proxied(stack: ExitStack, host: str, port: int) -> FaultProxy:
    """A started fault proxy in front of host:port, stopped with the stack."""
    return stack.enter_context(FaultProxy((host, port)))


def network_faults(proxy: FaultProxy, **extra: Fault) -> dict[str, Fault]:
    """The classes every network source shares: slow, refused, silent, garbage on the wire."""

    def back() -> None:
        proxy.set("pass")

    faults = {
        "timeout": Fault(
            f"peer answers after {SLOW:g} s", Reason.TIMEOUT, lambda: proxy.set("delay", delay=SLOW), back
        ),
        "refused": Fault("nothing listens", Reason.CONNECTION_REFUSED, lambda: proxy.set("refuse"), back, "refused"),
        "hang": Fault("accepts, never answers", Reason.TIMEOUT, lambda: proxy.set("hang"), back),
        "garbage": Fault("wire garbage", Reason.PROTOCOL_ERROR, lambda: proxy.set("garbage"), back),
    }
    faults.update(extra)
    return faults


def first_target(daemon: Daemon, source: str) -> str:
    """The only target of a source."""
    (target,) = daemon.collectors[source].targets()
    return str(target)


@contextmanager
def collecting(rig: Rig) -> Iterator[list[str]]:
    """Run one cycle on a thread, scraping /metrics over HTTP while it runs and once after; yields the scrapes."""
    scrapes: list[str] = []
    errors: list[BaseException] = []

    def cycle() -> None:
        try:
            rig.collect()
        except BaseException as err:  # surfaced in the test thread
            errors.append(err)

    thread = threading.Thread(target=cycle, name="fault-cycle")
    thread.start()
    while thread.is_alive():
        scrapes.append(rig.scrape())
        thread.join(0.1)
    scrapes.append(rig.scrape())  # after the cycle's publish
    if errors:
        raise errors[0]
    yield scrapes
