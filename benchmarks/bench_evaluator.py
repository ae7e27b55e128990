"""Evaluator benchmark, measured side by side in one run.

The whole rule catalogue plus the rotation checklist versus the core pipeline's first rules
alone (expiry windows and source down), on the same snapshot: 200 AOS nodes, each holding
the lab's AOS certificates of both generations plus 80 unrelated ones (~98 per node), with a
state-store history row for every location. The ratio is what the catalogue costs per
evaluation (one evaluation per collection cycle, never per scrape).

Run: .venv/bin/python benchmarks/bench_evaluator.py
"""

from __future__ import annotations

import dataclasses
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from cryptography.hazmat.primitives.asymmetric import ec

from collectors.base import Deadline
from collectors.certfolder import CertFolderCollector
from collectors.certificate import certificate_from_der
from collectors.configtemplate import ConfigTemplate, TemplateNodeType, TemplateVM
from collectors.model import CertObservation, Health, Observation, Snapshot, SourceResult
from daemon.app import Daemon
from daemon.evaluator import evaluate
from daemon.metrics import build_families
from daemon.rules.expiry import expiry_findings
from daemon.rules.health import source_down_findings
from daemon.settings import load_settings
from daemon.state import LocationHistory
from simulator.lab import build_lab
from simulator.pki import make_certificate

NODES, EXTRA = 200, 80
NOW = datetime(2026, 11, 27, 12, tzinfo=UTC)


def _extra_certificates() -> list[CertObservation]:
    key = ec.generate_private_key(ec.SECP256R1())
    return [
        CertObservation(
            certificate_from_der(
                make_certificate(
                    f"app{i}.bench.lab",
                    not_before=NOW - timedelta(days=1),
                    not_after=NOW + timedelta(days=40 + i),
                    key=key,
                ).der
            ),
            "certfolder",
            "",
            has_private_key=True,
        )
        for i in range(EXTRA)
    ]


def _scaled(template: ConfigTemplate) -> ConfigTemplate:
    vms = tuple(
        TemplateVM(f"AOS{i:03d}", f"10.1.{i // 250}.{i % 250}", "", "", "AOSNodeType", "AOS") for i in range(NODES)
    )
    return dataclasses.replace(template, node_types=(TemplateNodeType("AOSNodeType", True, "AOS", "AOS", vms),))


def build() -> tuple[Snapshot, list[LocationHistory], object]:
    """The lab's file sources as collected, with the node stores scaled to NODES AOS nodes."""
    lab = build_lab(Path(tempfile.mkdtemp()) / "lab", now=NOW, port=0)
    settings = load_settings(lab.config_file)
    daemon = Daemon(settings, clock=lambda: NOW)
    daemon.collect_once()
    snapshot = daemon.runner.snapshot()
    daemon.stop()
    folder = CertFolderCollector(lab.certs_dir, lab.password.encode())
    aos = [obs.certificate for obs in folder.collect("AOS1", Deadline.after(60)).certificates]
    extra = _extra_certificates()
    health = Health(True, None, "", 0.01, NOW, NOW)
    results = {k: r for k, r in snapshot.results.items() if r.source != "certfolder"}
    for key, result in list(results.items()):
        facts = result.observation.facts if result.observation is not None else None
        if isinstance(facts, ConfigTemplate) and result.observation is not None:
            results[key] = dataclasses.replace(
                result, observation=dataclasses.replace(result.observation, facts=_scaled(facts))
            )
    history = []
    for i in range(NODES):
        node = f"AOS{i:03d}"
        certs = tuple(CertObservation(c, "certfolder", node, has_private_key=True) for c in aos)
        certs += tuple(dataclasses.replace(o, node=node) for o in extra)
        results[("certfolder", node)] = SourceResult("certfolder", node, health, Observation(certificates=certs))
        history += [
            LocationHistory("certfolder", node, node, o.store, o.thumbprint, "", None, NOW, NOW, None, True)
            for o in certs
        ]
    return Snapshot("bench", NOW, results), history, settings


def _best(run: Callable[[], object], repeat: int = 7) -> float:
    times = []
    for _ in range(repeat):
        started = time.perf_counter()
        run()
        times.append(time.perf_counter() - started)
    return min(times) if len(times) < 3 else statistics.median(sorted(times)[: max(3, repeat // 2)])


def main() -> dict[str, float]:
    """Print both timings and their ratio; return the ratio."""
    snapshot, history, settings = build()
    locations = sum(len(r.observation.certificates) for r in snapshot if r.observation is not None)
    full = evaluate(snapshot, history, NOW, settings)  # type: ignore[arg-type]
    core_rules = (expiry_findings, source_down_findings)

    def core() -> object:
        return evaluate(snapshot, history, NOW, settings, rules=core_rules, steps=())  # type: ignore[arg-type]

    def catalogue() -> object:
        return evaluate(snapshot, history, NOW, settings)  # type: ignore[arg-type]

    core_s, full_s = _best(core), _best(catalogue)
    render_s = _best(lambda: build_families(full, {}))
    print(f"snapshot: {NODES} nodes, {locations} certificate locations, {len(history)} history rows")
    print(f"findings {len(full.findings)}, checklist steps {len(full.checklist.steps)}")
    print(f"core rules only (expiry, source down):       {core_s * 1000:8.1f} ms")
    print(f"whole catalogue + rotation checklist:        {full_s * 1000:8.1f} ms")
    print(f"ratio catalogue / core:                      {full_s / core_s:8.2f}")
    print(f"metric families of the full evaluation:      {render_s * 1000:8.1f} ms")
    return {"ratio": full_s / core_s}


if __name__ == "__main__":
    main()
