"""The pre-rendered exposition: byte-for-byte what prometheus_client renders, served as bytes over HTTP."""

from __future__ import annotations

import gzip
import http.client
from collections.abc import Iterator, Sequence

import pytest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, InfoMetricFamily, Metric
from prometheus_client.exposition import generate_latest
from prometheus_client.openmetrics.exposition import generate_latest as openmetrics_latest
from prometheus_client.openmetrics.parser import text_string_to_metric_families as parse_openmetrics

from daemon.app import Daemon
from daemon.exposition import OPENMETRICS_CONTENT_TYPE, TEXT_CONTENT_TYPE, render_exposition
from daemon.settings import Settings

PROMETHEUS_ACCEPT = (
    "application/openmetrics-text;version=1.0.0,application/openmetrics-text;version=0.0.1;q=0.75,"
    "text/plain;version=0.0.4;q=0.5,*/*;q=0.1"
)


class _Fixed:
    def __init__(self, families: Sequence[Metric]) -> None:
        self.families = families

    def collect(self) -> Sequence[Metric]:
        return self.families


def _reference(families: Sequence[Metric]) -> tuple[bytes, bytes]:
    fixed = _Fixed(families)
    return generate_latest(fixed), openmetrics_latest(fixed)  # type: ignore[arg-type]


def _odd_families() -> list[Metric]:
    gauge = GaugeMetricFamily("odd_gauge", 'Help with "quotes", a \\ backslash\nand a newline.', labels=["a", "b"])
    gauge.add_metric(['quote " here', "back\\slash\nnew line"], 1.0)
    gauge.add_metric(["ünïcödé", ""], float("nan"))
    gauge.add_metric(["inf", "x"], float("inf"))
    gauge.add_metric(["-inf", "x"], float("-inf"))
    gauge.add_metric(["big", "x"], 1764000000.0)
    gauge.add_metric(["bigger", "x"], 1.5e300)
    gauge.add_metric(["small", "x"], 1e-9)
    gauge.add_metric(["negative", "x"], -17534000000.25)
    gauge.add_metric(["zero", "x"], 0.0)
    counter = CounterMetricFamily("odd_errors", "A counter.", labels=["z", "a"])
    counter.add_metric(["2", "1"], 3.0)
    created = CounterMetricFamily("odd_created", "A counter with a created time.", labels=["x"])
    created.add_metric(["1"], 2.0, created=1700000000.0)
    info = InfoMetricFamily("odd_build", "An info family.", value={"version": "1"})
    timestamped = GaugeMetricFamily("odd_stamped", "A gauge with a timestamp.")
    timestamped.add_metric([], 4.0, timestamp=1700000000.5)
    bare = GaugeMetricFamily("odd_bare", "No labels.", value=7.0)
    empty = GaugeMetricFamily("odd_empty", "No samples at all.", labels=["a"])
    return [gauge, counter, created, info, timestamped, bare, empty]


def test_edge_cases_render_like_prometheus_client() -> None:
    families = _odd_families()
    exposition = render_exposition(families)
    text, openmetrics = _reference(families)
    assert exposition.text == text
    assert exposition.openmetrics == openmetrics
    assert gzip.decompress(exposition.text_gzip) == text
    assert gzip.decompress(exposition.openmetrics_gzip) == openmetrics


@pytest.fixture
def daemon(lab_settings: Settings, now) -> Iterator[Daemon]:  # type: ignore[no-untyped-def]
    daemon = Daemon(lab_settings, clock=lambda: now)
    daemon.collect_once()
    daemon.start(schedule=False)
    yield daemon
    daemon.stop()


def _get(daemon: Daemon, headers: dict[str, str]) -> tuple[int, bytes, dict[str, str]]:
    assert daemon.http is not None
    connection = http.client.HTTPConnection("127.0.0.1", daemon.http.port, timeout=10)
    try:
        connection.request("GET", "/metrics", headers=headers)
        response = connection.getresponse()
        return response.status, response.read(), {k.lower(): v for k, v in response.getheaders()}
    finally:
        connection.close()


def test_the_daemon_serves_what_prometheus_client_would_render(daemon: Daemon) -> None:
    families = daemon.view.families
    text, openmetrics = _reference(families)
    status, body, headers = _get(daemon, {})
    assert status == 200 and body == text and headers["content-type"] == TEXT_CONTENT_TYPE
    status, body, headers = _get(daemon, {"Accept": PROMETHEUS_ACCEPT, "Accept-Encoding": "gzip"})
    assert status == 200 and headers["content-encoding"] == "gzip"
    assert headers["content-type"] == OPENMETRICS_CONTENT_TYPE
    assert gzip.decompress(body) == openmetrics
    names = {family.name for family in parse_openmetrics(gzip.decompress(body).decode())}
    assert "certmon_cert_not_after_timestamp_seconds" in names
    # q=0 refuses gzip; text/plain listed first wins over OpenMetrics, as in prometheus_client.
    status, body, headers = _get(
        daemon, {"Accept-Encoding": "gzip;q=0", "Accept": "text/plain, application/openmetrics-text"}
    )
    assert "content-encoding" not in headers and body == text


def test_a_new_evaluation_is_served_after_publish(daemon: Daemon, lab_settings: Settings, now) -> None:  # type: ignore[no-untyped-def]
    before = daemon.view.exposition
    _, body, _ = _get(daemon, {})
    assert body == before.text
    for collector in list(daemon.collectors):
        daemon.runner.run_source(collector)
    view = daemon.publish()
    assert view.exposition is not before
    _, body, _ = _get(daemon, {})
    assert body == view.exposition.text == _reference(view.families)[0]
