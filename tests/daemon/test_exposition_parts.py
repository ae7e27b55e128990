"""Large /metrics bodies kept as shared parts: the same bytes as prometheus_client, one valid gzip member each,
and a real Prometheus scrapes them whole."""

from __future__ import annotations

import gzip
import http.client
import json
import urllib.parse
import zlib
from collections.abc import Iterator, Sequence
from pathlib import Path

import pytest
import yaml
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.exposition import generate_latest
from prometheus_client.openmetrics.exposition import generate_latest as openmetrics_latest

from daemon.bodyparts import COALESCE_BELOW
from daemon.exposition import Exposition, render_exposition
from daemon.http import HttpServer, Router, exposition_handler
from daemon.webconfig import WebConfig
from tests.conftest import free_port
from tests.e2e.peers import PROMETHEUS, Service, get_json, wait_for

SERIES = 8_000


class _Fixed:
    def __init__(self, families: Sequence[Metric]) -> None:
        self.families = families

    def collect(self) -> Sequence[Metric]:
        return self.families


def _families() -> list[Metric]:
    """Two large families (parts shared by both formats) between small ones (each body's own bytes)."""
    small = GaugeMetricFamily("scale_small", "A small family.", labels=["a"])
    small.add_metric(["x"], 1.0)
    expiry = GaugeMetricFamily("scale_cert_not_after", "Expiry.", labels=["thumbprint", "node", "subject_cn"])
    start = GaugeMetricFamily("scale_cert_not_before", "Start.", labels=["thumbprint", "node", "subject_cn"])
    for i in range(SERIES):
        labels = [f"{i:040X}", f"NODE{i % 7}", f'app{i}.contoso.lab "quoted"']
        expiry.add_metric(labels, 1.8e9 + i)
        start.add_metric(labels, 1.7e9 - i)
    errors = CounterMetricFamily("scale_errors", "A counter between the large ones.", labels=["reason"])
    errors.add_metric(["timeout"], 2.0)
    created = CounterMetricFamily("scale_created", "Rendered by prometheus_client itself.", labels=["x"])
    created.add_metric(["1"], 2.0, created=1700000000.0)
    bare = GaugeMetricFamily("scale_bare", "No labels.", value=7.0)
    return [small, expiry, errors, start, created, bare]


def _one_gzip_member(body: bytes) -> bytes:
    """Decompress, requiring exactly one complete gzip member and nothing after it."""
    inflater = zlib.decompressobj(wbits=16 + zlib.MAX_WBITS)
    plain = inflater.decompress(body) + inflater.flush()
    assert inflater.eof and not inflater.unused_data
    return plain


@pytest.fixture(scope="module")
def exposition() -> Exposition:
    return render_exposition(_families())


def test_large_families_render_like_prometheus_client_and_share_their_parts(exposition: Exposition) -> None:
    fixed = _Fixed(_families())
    text, openmetrics = generate_latest(fixed), openmetrics_latest(fixed)  # type: ignore[arg-type]
    assert exposition.text == text
    assert exposition.openmetrics == openmetrics
    assert _one_gzip_member(exposition.text_gzip) == text
    assert _one_gzip_member(exposition.openmetrics_gzip) == openmetrics
    assert gzip.decompress(exposition.openmetrics_gzip) == openmetrics
    # The large families' lines are the same objects in both plain bodies, their deflate in both gzip bodies.
    shared_plain = {id(c) for c in exposition.text_parts.chunks} & {id(c) for c in exposition.openmetrics_parts.chunks}
    assert sum(len(c) for c in exposition.text_parts.chunks if id(c) in shared_plain) > 0.9 * len(text)
    text_gzip, openmetrics_gzip = exposition.text_gzip_parts.chunks, exposition.openmetrics_gzip_parts.chunks
    assert {id(c) for c in text_gzip} & {id(c) for c in openmetrics_gzip}
    plain_four = len(text) + len(openmetrics) + len(exposition.text_gzip) + len(exposition.openmetrics_gzip)
    assert exposition.nbytes < 0.6 * plain_four
    # No part of a body is a whole large family: lines are encoded a few thousand at a time.
    assert max(len(c) for c in exposition.text_parts.chunks) < len(text) / 2
    # Small pieces (HELP lines, small families) are copied together rather than sent one by one.
    assert len(exposition.text_parts.chunks) <= 16 and min(len(c) for c in exposition.text_parts.chunks[:-1]) > 0
    assert len(text) > 4 * COALESCE_BELOW


@pytest.fixture
def server(exposition: Exposition) -> Iterator[HttpServer]:
    router = Router()
    router.add("GET", "/metrics", exposition_handler(lambda: exposition))
    listener = HttpServer("127.0.0.1", 0, WebConfig(), router)
    listener.start()
    yield listener
    listener.stop()


def test_parts_are_served_whole_plain_and_gzipped(server: HttpServer, exposition: Exposition) -> None:
    for headers, expected in (({}, exposition.text), ({"Accept-Encoding": "gzip"}, exposition.text_gzip)):
        connection = http.client.HTTPConnection("127.0.0.1", server.port, timeout=30)
        try:
            connection.request("GET", "/metrics", headers=headers)
            response = connection.getresponse()
            assert response.getheader("Content-Length") == str(len(expected))
            assert response.read() == expected
            connection.request("HEAD", "/metrics", headers=headers)
            response = connection.getresponse()
            assert response.getheader("Content-Length") == str(len(expected)) and response.read() == b""
        finally:
            connection.close()


@pytest.mark.skipif(PROMETHEUS is None, reason="Debian's prometheus is not installed")
def test_prometheus_scrapes_every_series_of_the_gzipped_parts(server: HttpServer, tmp_path: Path) -> None:
    """Prometheus asks for OpenMetrics with gzip: the assembled member must decode whole in Go's gzip reader."""
    config = tmp_path / "prometheus.yml"
    config.write_text(
        yaml.safe_dump(
            {
                "global": {"scrape_interval": "1s"},
                "scrape_configs": [
                    {"job_name": "parts", "static_configs": [{"targets": [f"127.0.0.1:{server.port}"]}]}
                ],
            }
        )
    )
    port = free_port()
    assert PROMETHEUS is not None
    prometheus = Service(
        [
            PROMETHEUS,
            f"--config.file={config}",
            f"--storage.tsdb.path={tmp_path / 'tsdb'}",
            f"--web.listen-address=127.0.0.1:{port}",
        ],
        port,
        tmp_path / "prometheus.log",
    )
    try:

        def query(expr: str) -> list[dict[str, object]]:
            url = f"{prometheus.url}/api/v1/query?query={urllib.parse.quote(expr)}"
            return list(get_json(url)["data"]["result"])

        def scraped() -> list[dict[str, object]]:
            return query('scrape_samples_scraped{job="parts"}')

        result = wait_for("a scrape of the parts", scraped)
        targets = get_json(f"{prometheus.url}/api/v1/targets")["data"]["activeTargets"]
        assert [t["health"] for t in targets] == ["up"], json.dumps(targets)[:2000]
        assert float(result[0]["value"][1]) >= 2 * SERIES  # type: ignore[index]
        counts = query("count(scale_cert_not_after) + count(scale_cert_not_before)")
        assert float(counts[0]["value"][1]) == 2 * SERIES  # type: ignore[index]
        assert query('scale_cert_not_after{thumbprint="' + f"{SERIES - 1:040X}" + '"}')
    finally:
        prometheus.close()


def test_the_next_rendering_shares_unchanged_parts_with_the_exposition_it_replaces(exposition: Exposition) -> None:
    families = _families()
    again = render_exposition(families, exposition)
    assert again.text == exposition.text and again.openmetrics_gzip == exposition.openmetrics_gzip
    # Nothing changed: every part and segment of the large families is the previous exposition's object.
    assert set(again.shared) == set(exposition.shared) == {"scale_cert_not_after", "scale_cert_not_before"}
    for name, (chunks, segment) in again.shared.items():
        before_chunks, before_segment = exposition.shared[name]
        assert all(a is b for a, b in zip(chunks, before_chunks, strict=True)) and segment is before_segment
    # One series changed: only its part is new, and only its family is compressed again.
    start = next(f for f in families if f.name == "scale_cert_not_before")
    last = start.samples[-1]
    start.samples[-1] = last._replace(value=last.value + 1)
    changed = render_exposition(families, exposition)
    fixed = _Fixed(families)
    assert changed.text == generate_latest(fixed)  # type: ignore[arg-type]
    assert _one_gzip_member(changed.openmetrics_gzip) == openmetrics_latest(fixed)  # type: ignore[arg-type]
    kept, before = changed.shared["scale_cert_not_before"], exposition.shared["scale_cert_not_before"]
    assert [a is b for a, b in zip(kept[0], before[0], strict=True)] == [True] * (len(before[0]) - 1) + [False]
    assert kept[1] is not before[1]
    unchanged = changed.shared["scale_cert_not_after"]
    assert unchanged[1] is exposition.shared["scale_cert_not_after"][1]
