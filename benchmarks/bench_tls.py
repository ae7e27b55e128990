"""TLS probe wall time vs blackbox_exporter's probe_duration_seconds, side by side on the same endpoints.

The lab's TLS endpoints run in a separate process (so neither prober shares a GIL with the servers);
each round probes every address once with certmon's TlsCollector and once through Debian's
prometheus-blackbox-exporter, alternating which goes first. Prints medians and their ratio
(certmon wall time / blackbox probe_duration_seconds; target <= 1.0).

    python benchmarks/bench_tls.py [--rounds 200]
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from collectors.base import Deadline  # noqa: E402
from collectors.tls import Endpoint, TlsCollector  # noqa: E402
from simulator.blackbox import Blackbox, find_blackbox, tls_module  # noqa: E402


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=200, help="probes per address and prober (default 200)")
    parser.add_argument("--warmup", type=int, default=10)
    args = parser.parse_args()
    if find_blackbox() is None:
        print("prometheus-blackbox-exporter is not installed (apt-get install prometheus-blackbox-exporter)")
        return 2
    folder = Path(tempfile.mkdtemp(prefix="certmon-bench-tls-"))
    services = subprocess.Popen(
        [sys.executable, "-m", "simulator.services", str(folder / "lab")],
        cwd=ROOT,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert services.stdout is not None
        lab = json.loads(services.stdout.readline())
        return run(lab, folder, args.rounds, args.warmup)
    finally:
        assert services.stdin is not None
        services.stdin.close()
        services.wait(timeout=30)


def run(lab: dict, folder: Path, rounds: int, warmup: int) -> int:
    ca = Path(lab["ca_bundle"])
    # Blackbox speaks TLS first only: plain TLS endpoints and TDS 8 (strict) qualify, TDS 7.x does not.
    probes = []
    for entry in lab["endpoints"]:
        kind = entry.get("kind", "tls")
        if kind not in ("tls", "tds8"):
            continue
        for address in entry["addresses"]:
            name = f"{entry['name']}@{address}"
            probes.append((name, Endpoint(name, entry["host"], entry["port"], kind, addresses=(address,))))
    collector = TlsCollector([e for _, e in probes], ca)
    modules = {f"m{i}": tls_module(ca, e.host) for i, (_, e) in enumerate(probes)}
    ours: dict[str, list[float]] = {name: [] for name, _ in probes}
    theirs: dict[str, list[float]] = {name: [] for name, _ in probes}
    with Blackbox(modules, folder) as blackbox:

        def certmon(name: str) -> float:
            started = time.perf_counter()
            collector.collect(name, Deadline.after(10))
            return time.perf_counter() - started

        def exporter(index: int, endpoint: Endpoint) -> float:
            result = blackbox.probe(f"m{index}", f"{endpoint.addresses[0]}:{endpoint.port}")
            return result["probe_duration_seconds"][0][1]

        for round_ in range(warmup + rounds):
            for index, (name, endpoint) in enumerate(probes):
                # Alternate the order so neither prober always finds the server warm.
                if round_ % 2:
                    a, b = certmon(name), exporter(index, endpoint)
                else:
                    b, a = exporter(index, endpoint), certmon(name)
                if round_ >= warmup:
                    ours[name].append(a)
                    theirs[name].append(b)
    print("TLS probe: certmon TlsCollector.collect wall time vs blackbox_exporter probe_duration_seconds")
    print(f"{rounds} rounds per address, medians, endpoints served by a separate process on loopback\n")
    print(f"{'endpoint@address':28} {'certmon ms':>11} {'blackbox ms':>12} {'ratio':>7}")
    ratios = []
    for name, _ in probes:
        mine, other = statistics.median(ours[name]), statistics.median(theirs[name])
        ratios.append(mine / other)
        print(f"{name:28} {mine * 1000:11.3f} {other * 1000:12.3f} {mine / other:7.2f}")
    total_mine = statistics.median([sum(v) for v in zip(*ours.values(), strict=True)])
    total_other = statistics.median([sum(v) for v in zip(*theirs.values(), strict=True)])
    print(f"\ngeometric mean of ratios: {statistics.geometric_mean(ratios):.2f}")
    print(
        f"median round over all addresses: certmon {total_mine * 1000:.2f} ms, blackbox {total_other * 1000:.2f} ms, "
        f"ratio {total_mine / total_other:.2f} (target <= 1.0)"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
