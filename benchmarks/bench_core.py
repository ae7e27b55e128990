"""Core benchmarks, measured side by side in one run.

1. GET /metrics over HTTP for 20,000 certificate series (~60,000 series): process CPU per scrape
   of certmon's listener, which serves the bodies rendered once per evaluation, versus a bare
   prometheus_client server (`start_http_server`, a custom collector emitting exactly the same
   series, rendered per scrape), as Prometheus asks (OpenMetrics, gzip) and plain (target <= 0.1);
   and two scrapes against one evaluation's CPU (target <= 1).
2. The certificate record, thumbprint + notAfter, versus the floor `load_der_x509_certificate` +
   `hashlib.sha1(der)`: new certificates (target >= 0.8) and certificates seen before (>= 1.5).

Run: .venv/bin/python benchmarks/bench_core.py
"""

from __future__ import annotations

import hashlib
import http.client
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Iterable
from datetime import UTC, datetime, timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec
from prometheus_client import CollectorRegistry, generate_latest, start_http_server
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.openmetrics.exposition import generate_latest as openmetrics_latest

from collectors import certificate as model
from collectors.base import Collector, Deadline
from collectors.model import CertObservation, Observation
from daemon.app import Daemon
from daemon.exposition import render_exposition
from daemon.settings import Settings
from simulator.pki import make_certificate

NODES, PER_NODE = 200, 100
NOW = datetime(2026, 11, 27, tzinfo=UTC)


def _unique_ders(count: int) -> list[bytes]:
    key = ec.generate_private_key(ec.SECP256R1())
    ca = make_certificate(
        "Bench CA", not_before=NOW - timedelta(days=10), not_after=NOW + timedelta(days=900), key=key, is_ca=True
    )
    return [
        make_certificate(
            f"cert{i}.bench.lab",
            not_before=NOW - timedelta(days=1),
            not_after=NOW + timedelta(days=30 + i % 700),
            key=key,
            issuer=ca,
            dns_names=(f"cert{i}.bench.lab",),
        ).der
        for i in range(count)
    ]


class SyntheticStores(Collector):
    """200 nodes x 100 certificates already parsed: the exporter benchmark measures rendering only."""

    name = "winrm"

    def __init__(self, ders: list[bytes]) -> None:
        super().__init__()
        self.certs = [model.certificate_from_der(d) for d in ders]

    def targets(self) -> tuple[str, ...]:
        return tuple(f"NODE{n:03d}" for n in range(NODES))

    def collect(self, target: str, deadline: Deadline) -> Observation:
        return Observation(
            certificates=tuple(CertObservation(c, self.name, target, has_private_key=True) for c in self.certs)
        )


class BareCollector:
    """The minimum a custom collector does: build the same families from plain tuples per scrape."""

    def __init__(self, families: Iterable[Metric]) -> None:
        self.rows = [
            (
                f.type,
                f.name,
                f.documentation,
                list(f.samples[0].labels) if f.samples else [],
                [(tuple(s.labels.values()), s.value) for s in f.samples],
            )
            for f in families
        ]

    def collect(self) -> Iterable[Metric]:
        for kind, name, documentation, labels, samples in self.rows:
            family_class = CounterMetricFamily if kind == "counter" else GaugeMetricFamily
            family = family_class(name, documentation, labels=labels)
            for values, value in samples:
                family.add_metric(values, value)
            yield family


def _median_time(fn: Callable[[], object], rounds: int) -> float:
    times = []
    for _ in range(rounds):
        started = time.perf_counter()
        fn()
        times.append(time.perf_counter() - started)
    return statistics.median(times)


PROMETHEUS_HEADERS = {
    "Accept": "application/openmetrics-text;version=1.0.0,application/openmetrics-text;version=0.0.1;q=0.75,"
    "text/plain;version=0.0.4;q=0.5,*/*;q=0.1",
    "Accept-Encoding": "gzip",
}


def _scrape_cpu(port: int, headers: dict[str, str], rounds: int) -> float:
    """Median process CPU seconds of one GET /metrics (server and client both in this process)."""
    times = []
    for _ in range(rounds):
        connection = http.client.HTTPConnection("127.0.0.1", port, timeout=120)
        started = time.process_time()
        connection.request("GET", "/metrics", headers=headers)
        response = connection.getresponse()
        body = response.read()
        times.append(time.process_time() - started)
        connection.close()
        assert response.status == 200 and body
    return statistics.median(times)


def bench_metrics(rounds: int = 15) -> dict[str, float]:
    """Scrape /metrics over HTTP: certmon's listener versus a bare prometheus_client server; print and return."""
    ders = _unique_ders(PER_NODE)
    with tempfile.TemporaryDirectory() as folder:
        settings = Settings(environment="bench", data_dir=Path(folder))
        settings.exporter.port = 0
        settings.api.enabled = False
        daemon = Daemon(settings, collectors=[SyntheticStores(ders)], clock=lambda: NOW)
        daemon.collect_once()
        cert_series = sum(
            1 for f in daemon.view.families if f.name == "certmon_cert_not_after_timestamp_seconds" for _ in f.samples
        )
        total_series = sum(len(f.samples) for f in daemon.view.families)
        bare = CollectorRegistry(auto_describe=False)
        bare.register(BareCollector(daemon.view.families))
        assert generate_latest(bare) == daemon.view.exposition.text, "both must serve exactly the same exposition"
        evaluations = []
        renders = []
        for _ in range(max(3, rounds // 3)):
            started = time.process_time()
            view = daemon.publish()
            evaluations.append(time.process_time() - started)
            started = time.process_time()
            render_exposition(view.families)
            renders.append(time.process_time() - started)
        library = []
        for _ in range(max(3, rounds // 3)):
            started = time.process_time()
            generate_latest(bare)
            openmetrics_latest(bare)
            library.append(time.process_time() - started)
        library_render = statistics.median(library)
        daemon.start(schedule=False)
        assert daemon.http is not None
        server, _ = start_http_server(0, addr="127.0.0.1", registry=bare)
        bare_port = server.server_address[1]
        figures: dict[str, float] = {}
        for label, headers in (("prometheus", PROMETHEUS_HEADERS), ("plain", {})):
            pairs = [
                (_scrape_cpu(daemon.http.port, headers, 1), _scrape_cpu(bare_port, headers, 1)) for _ in range(rounds)
            ]
            figures[f"{label}_certmon_s"] = statistics.median(p[0] for p in pairs)
            figures[f"{label}_bare_s"] = statistics.median(p[1] for p in pairs)
        server.shutdown()
        server.server_close()
        daemon.stop()
    evaluation = statistics.median(evaluations)
    render = statistics.median(renders)
    ratio = figures["prometheus_certmon_s"] / figures["prometheus_bare_s"]
    two = 2 * figures["prometheus_certmon_s"] / evaluation
    print(f"/metrics scrape over HTTP: {cert_series} certificate series ({total_series} series in all), CPU per scrape")
    for label, title in (("prometheus", "as Prometheus asks (OpenMetrics, gzip)"), ("plain", "plain text")):
        ours, theirs = figures[f"{label}_certmon_s"], figures[f"{label}_bare_s"]
        print(f"  {title}")
        print(f"    certmon listener (pre-rendered)   {ours * 1000:9.2f} ms")
        print(f"    bare prometheus_client server     {theirs * 1000:9.2f} ms")
        print(f"    ratio certmon / bare              {ours / theirs:9.3f}   (target <= 0.1)")
    print(
        f"  one evaluation (collect excluded)  {evaluation * 1000:9.1f} ms, of which rendering all four bodies "
        f"{render * 1000:.1f} ms (prometheus_client renders the two formats in {library_render * 1000:.1f} ms)"
    )
    print(f"  two scrapes / one evaluation       {two:9.3f}   (target <= 1)")
    return {
        "series": cert_series,
        "ratio": ratio,
        "plain_ratio": figures["plain_certmon_s"] / figures["plain_bare_s"],
        "two_scrapes_per_evaluation": two,
        "render_ratio": render / library_render,
        **figures,
        "evaluation_s": evaluation,
    }


def bench_parse(count: int = 2000, rounds: int = 7) -> dict[str, float]:
    """Parse throughput both ways; print and return certmon's ratios to bare cryptography."""
    ders = _unique_ders(count)

    def bare() -> None:
        # The honest floor: what any program must do to name a certificate and know it parses.
        for der in ders:
            x509.load_der_x509_certificate(der)
            hashlib.sha1(der, usedforsecurity=False).digest()

    def bare_fields() -> None:
        # The floor plus what the two fields themselves cost (the thumbprint's text, the notAfter datetime),
        # with no record and no cache: no record of those two fields can be faster than this.
        for der in ders:
            hashlib.sha1(der, usedforsecurity=False).hexdigest().upper()
            x509.load_der_x509_certificate(der).not_valid_after_utc  # noqa: B018 - the read is the cost

    def bound_object() -> None:
        # The bound plus the record object itself, made and dropped: no cache entry, nothing kept.
        for der in ders:
            thumbprint = hashlib.sha1(der, usedforsecurity=False).hexdigest().upper()
            model.Certificate(der, thumbprint, x509.load_der_x509_certificate(der).not_valid_after_utc)

    def ours_cold() -> None:
        model._CACHE.clear()
        for der in ders:
            c = model.certificate_from_der(der)
            _ = (c.thumbprint, c.not_after)

    def ours_cold_exporter_fields() -> None:
        model._CACHE.clear()
        for der in ders:
            c = model.certificate_from_der(der)
            _ = (c.subject_cn, c.issuer_cn, c.not_before, c.not_after)

    def ours_cold_full() -> None:
        model._CACHE.clear()
        for der in ders:
            model.to_record(model.LoadedCertificate(model.certificate_from_der(der), None, ""))

    def ours_warm() -> None:
        for der in ders:
            c = model.certificate_from_der(der)
            _ = (c.thumbprint, c.not_after)

    results: dict[str, list[float]] = {
        name: [] for name in ("bare", "bound", "object", "cold", "fields", "full", "warm")
    }
    for _ in range(rounds):
        results["bare"].append(_median_time(bare, 1))
        results["bound"].append(_median_time(bare_fields, 1))
        results["object"].append(_median_time(bound_object, 1))
        results["cold"].append(_median_time(ours_cold, 1))
        results["fields"].append(_median_time(ours_cold_exporter_fields, 1))
        results["full"].append(_median_time(ours_cold_full, 1))
        ours_cold()
        results["warm"].append(_median_time(ours_warm, 1))
    rate = {k: len(ders) / statistics.median(v) for k, v in results.items()}
    print(f"certificate parse throughput ({len(ders)} distinct certificates, certificates per second)")
    print(f"  bare load_der_x509_certificate + sha1    {rate['bare']:10.0f}")
    print(
        f"  bare + the two fields' text and datetime {rate['bound']:10.0f}   ratio {rate['bound'] / rate['bare']:.2f}"
        "   (no record: the bound for any record)"
    )
    print(
        f"  bound + the record object, not kept      {rate['object']:10.0f}   ratio {rate['object'] / rate['bare']:.2f}"
        "   (the object's share; the rest of 'new' is the cache entry)"
    )
    print(
        f"  certmon, new: thumbprint + notAfter      {rate['cold']:10.0f}   ratio {rate['cold'] / rate['bare']:.2f}"
        "   (target >= 0.8)"
    )
    print(
        f"  certmon, new + exporter fields           {rate['fields']:10.0f}   ratio {rate['fields'] / rate['bare']:.2f}"
    )
    print(f"  certmon, new + every field (inspect)     {rate['full']:10.0f}   ratio {rate['full'] / rate['bare']:.2f}")
    print(
        f"  certmon, seen before (every later cycle) {rate['warm']:10.0f}   ratio {rate['warm'] / rate['bare']:.2f}"
        "   (target >= 1.5)"
    )
    return {name: rate[name] / rate["bare"] for name in ("bound", "object", "cold", "fields", "full", "warm")}


if __name__ == "__main__":
    bench_metrics()
    bench_parse()
