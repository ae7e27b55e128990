"""One store of 20,000 certificates beside the lab: what an evaluation keeps is bounded, the status
document lists what matters, and Credentials.json recipients are resolved without parsing every issuer.

Speed is measured by benchmarks/bench_scale.py (50,000 certificates); these tests assert sizes only.
"""

from __future__ import annotations

import gc
import tracemalloc
from datetime import UTC, datetime, timedelta
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import Encoding
from cryptography.x509.oid import NameOID

from collectors import credentials
from collectors.base import Collector, Deadline
from collectors.certificate import certificate_from_der
from collectors.model import CertObservation, Observation
from daemon.app import Daemon
from daemon.bodyparts import Parts, unique_size
from daemon.exposition import Exposition
from daemon.settings import Settings
from daemon.sources.registry import build_collectors
from daemon.status import status_document
from daemon.statuscerts import STATUS_CERTIFICATE_LIMIT

CERTS = 20_000


def _ders(count: int, now: datetime) -> list[bytes]:
    key = ec.generate_private_key(ec.SECP256R1())
    issuer = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "Scale Issuing CA")])
    out = []
    for i in range(count):
        builder = (
            x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, f"app{i}.scale.lab")]))
            .issuer_name(issuer)
            .public_key(key.public_key())
            .serial_number(10_000_000 + i)
            .not_valid_before(now - timedelta(days=1))
            .not_valid_after(now + timedelta(days=200 + i % 500))
        )
        out.append(builder.sign(key, hashes.SHA256()).public_bytes(Encoding.DER))
    return out


class BigStore(Collector):
    """AOS1's LocalMachine\\My with thousands of certificates no configuration names."""

    name = "winrm"

    def __init__(self, ders: list[bytes]) -> None:
        super().__init__(timeout=600)
        self.certs = [certificate_from_der(d) for d in ders]

    def targets(self) -> tuple[str, ...]:
        return ("AOS1",)

    def collect(self, target: str, deadline: Deadline) -> Observation:
        return Observation(certificates=tuple(CertObservation(c, self.name, target) for c in self.certs))


def test_a_store_of_20000_certificates_keeps_the_view_and_the_status_document_bounded(
    lab_settings: Settings, tmp_path: Path, now: datetime
) -> None:
    settings = lab_settings.model_copy(update={"data_dir": tmp_path / "data"})
    big = BigStore(_ders(CERTS, datetime.now(UTC)))
    daemon = Daemon(settings, collectors=[*build_collectors(settings), big], clock=lambda: now)
    try:
        daemon.collect_once()
        credentials._issuer_key.cache_clear()
        gc.collect()
        tracemalloc.start()
        try:
            before = tracemalloc.get_traced_memory()[0]
            view = daemon.publish()
            gc.collect()
            kept = tracemalloc.get_traced_memory()[0] - before
        finally:
            tracemalloc.stop()
        series = sum(len(f.samples) for f in view.families)
        assert series > 2 * CERTS
        # Between evaluations the view keeps its series compactly (a Sample with a label dictionary
        # per series took about 700 bytes each), beside the /metrics bodies rendered once per
        # evaluation (daemon/exposition.py: text and OpenMetrics, plain and gzip), counted apart.
        exposition = view.exposition
        bodies = exposition.nbytes
        text = len(exposition.text_parts)
        assert text < 300 * series, f"{text} bytes of text for {series} series"
        # The two formats share their sample lines and their compressed segments: not four bodies' worth.
        assert bodies < 1.3 * text, f"{bodies} bytes held by the bodies for {text} bytes of text"
        assert kept - bodies < 20 * 2**20, (
            f"the view keeps {(kept - bodies) / 2**20:.0f} MiB for {series} series besides {bodies / 2**20:.0f} MiB of bodies"
        )
        # Resolving Credentials.json recipients parsed issuers of the named certificates only.
        assert credentials._issuer_key.cache_info().currsize <= 20
        # No certificate of the store keeps a parsed cryptography object (about 0.9 KiB each) for what
        # every evaluation reads (collectors.certificate._FROM_ONE_PARSE).
        assert not [c for c in big.certs if _slot_filled(c, "parsed")]
        assert all(_slot_filled(c, "serial") and _slot_filled(c, "not_before") for c in big.certs)
        # The next evaluation's bodies share the unchanged families' parts with the bodies still served.
        again = daemon.publish()
        both = unique_size(*_parts(view.exposition), *_parts(again.exposition))
        assert both < 1.1 * view.exposition.nbytes, f"{both} bytes held by two views' bodies of {bodies} each"

        document = status_document(view, settings)
        listed = document["certificates"]
        assert len(listed) <= STATUS_CERTIFICATE_LIMIT
        total = sum(1 for _ in view.evaluation.snapshot.certificates())
        assert document["certificates_omitted"] == total - len(listed) > 0
        referenced = {t for t in view.evaluation.roles}
        assert referenced <= {c["thumbprint"] for c in listed}, "every referenced certificate stays listed"
    finally:
        daemon.stop()


def _slot_filled(cert: object, name: str) -> bool:
    try:
        object.__getattribute__(cert, name)
    except AttributeError:
        return False
    return True


def _parts(exposition: Exposition) -> tuple[Parts, ...]:
    e = exposition
    return (e.text_parts, e.text_gzip_parts, e.openmetrics_parts, e.openmetrics_gzip_parts)


def test_summarized_stores_export_unreferenced_certificates_as_counts(
    lab_settings: Settings, tmp_path: Path, now: datetime
) -> None:
    exporter = lab_settings.exporter.model_copy(update={"summarized_stores": ["localmachine\\root"]})
    settings = lab_settings.model_copy(update={"data_dir": tmp_path / "data", "exporter": exporter})
    daemon = Daemon(settings, clock=lambda: now)
    try:
        view = daemon.collect_once()
        families = {f.name: f for f in view.families}
        per_cert = [s.labels for s in families["certmon_cert_not_after_timestamp_seconds"].samples]
        assert per_cert and not [labels for labels in per_cert if labels["store"].lower() == "localmachine\\root"]
        assert any(labels["store"] == "LocalMachine\\My" for labels in per_cert)
        counts = {s.labels["node"]: s.value for s in families["certmon_store_certificates"].samples}
        roots = {o.node for o in view.evaluation.snapshot.certificates() if o.store == "LocalMachine\\Root"}
        assert roots and set(counts) == roots and all(v >= 1 for v in counts.values())
        earliest = families["certmon_store_earliest_not_after_timestamp_seconds"].samples
        assert {s.labels["node"] for s in earliest} == roots
    finally:
        daemon.stop()
