"""Side by side with Debian's prometheus-blackbox-exporter on the same local TLS endpoints."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest

from collectors.base import Deadline
from collectors.tls.collector import Endpoint, TlsCollector, TlsEndpointFacts
from simulator.blackbox import Blackbox, find_blackbox, tls_module
from simulator.lab import build_lab
from simulator.services import LabServices

pytestmark = pytest.mark.skipif(find_blackbox() is None, reason="prometheus-blackbox-exporter is not installed")


def _one(result: dict[str, list[tuple[dict[str, str], float]]], name: str) -> float:
    ((_, value),) = result[name]
    return value


def test_same_expiry_as_blackbox_for_every_valid_chain(tmp_path: Path) -> None:
    # blackbox_exporter validates at the wall clock, so this lab is built at the wall clock too.
    lab = build_lab(tmp_path / "lab", now=datetime.now(UTC), port=0)
    with LabServices(lab) as services:
        # Blackbox speaks TLS first only: plain TLS and TDS 8 (strict) endpoints; TDS 7.x is ours alone.
        entries = [e for e in services.endpoints if e.get("kind", "tls") in ("tls", "tds8")]
        collector = TlsCollector(
            [
                Endpoint(e["name"], e["host"], e["port"], e.get("kind", "tls"), addresses=tuple(e["addresses"]))
                for e in entries
            ],
            lab.ca_bundle,
        )
        ours: dict[str, TlsEndpointFacts] = {}
        for entry in entries:
            facts = collector.collect(entry["name"], Deadline.after(10)).facts
            assert isinstance(facts, TlsEndpointFacts)
            ours[entry["name"]] = facts
        pairs = [(e, a) for e in entries for a in e["addresses"]]
        modules = {f"m{i}": tls_module(lab.ca_bundle, e["host"]) for i, (e, _) in enumerate(pairs)}
        compared, lost = [], []
        with Blackbox(modules, tmp_path) as blackbox:
            for index, (entry, address) in enumerate(pairs):
                theirs = blackbox.probe(f"m{index}", f"{address}:{entry['port']}")
                probe = next(p for p in ours[entry["name"]].probes if p.address == address)
                where = f"{entry['name']}@{address}"
                assert probe.presented, where
                if probe.chain_valid:
                    assert _one(theirs, "probe_success") == 1.0, where
                    earliest = min(c.not_after_ts for c in probe.presented)
                    assert _one(theirs, "probe_ssl_earliest_cert_expiry") == earliest, where
                    ((labels, _),) = theirs["probe_tls_version_info"]
                    assert labels["version"] == probe.tls_version, where
                    compared.append(where)
                else:
                    # Blackbox fails the probe and loses the certificate's expiry; certmon keeps both.
                    assert _one(theirs, "probe_success") == 0.0, where
                    assert "probe_ssl_earliest_cert_expiry" not in theirs, where
                    lost.append((where, probe.chain_error))
    assert {where.split("@")[0] for where in compared} == {"adfs", "aos", "sf-gateway", "sql-strict", "ssrs"}
    assert len(compared) == len(pairs) - 3
    assert sorted(lost) == [
        ("expired@127.0.0.1", "expired"),
        ("untrusted@127.0.0.1", "untrusted"),
        ("wrong-name@127.0.0.1", "hostname_mismatch"),
    ]
