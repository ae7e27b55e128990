"""TLS probe wall time vs blackbox_exporter's probe_duration_seconds, side by side on the same endpoints.

The lab's TLS endpoints run in a separate process (so no prober shares a GIL with the servers).
Each round probes every address once with certmon's TlsCollector and once through Debian's
prometheus-blackbox-exporter, alternating which goes first, and probes every multi-address
endpoint once as a whole (certmon probes its addresses concurrently; blackbox needs one probe per
address). Prints medians and the ratio certmon wall time / blackbox probe_duration_seconds
(target <= 1.0).

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
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from collectors.base import Deadline  # noqa: E402
from collectors.tls.collector import Endpoint, TlsCollector  # noqa: E402
from simulator.blackbox import Blackbox, find_blackbox, tls_module  # noqa: E402


def main() -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--rounds", type=int, default=200, help="probes per address and prober (default 200)")
    parser.add_argument("--warmup", type=int, default=10)
    args = parser.parse_args()
    if find_blackbox() is None:
        print("prometheus-blackbox-exporter is not installed (apt-get install prometheus-blackbox-exporter)")
        return 2
    measure(args.rounds, args.warmup)
    return 0


def measure(rounds: int, warmup: int) -> dict[str, float]:
    """Start the lab's endpoints in a separate process and probe them both ways; the figures."""
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
        return run(lab, folder, rounds, warmup)
    finally:
        assert services.stdin is not None
        services.stdin.close()
        services.wait(timeout=30)


def _timed(action: Callable[[], Any]) -> float:
    started = time.perf_counter()
    action()
    return time.perf_counter() - started


def run(lab: dict[str, Any], folder: Path, rounds: int, warmup: int) -> dict[str, float]:
    ca = Path(lab["ca_bundle"])
    # Blackbox speaks TLS first only: plain TLS endpoints and TDS 8 (strict) qualify, TDS 7.x does not.
    entries = [e for e in lab["endpoints"] if e.get("kind", "tls") in ("tls", "tds8")]
    singles: list[tuple[str, Endpoint]] = []
    groups: list[tuple[Endpoint, list[str]]] = []
    for entry in entries:
        kind = entry.get("kind", "tls")
        names = []
        for address in entry["addresses"]:
            name = f"{entry['name']}@{address}"
            singles.append((name, Endpoint(name, entry["host"], entry["port"], kind, addresses=(address,))))
            names.append(name)
        if len(names) > 1:
            whole = Endpoint(entry["name"], entry["host"], entry["port"], kind, addresses=tuple(entry["addresses"]))
            groups.append((whole, names))
    collector = TlsCollector([e for _, e in singles] + [e for e, _ in groups], ca)
    modules = {name: tls_module(ca, endpoint.host) for name, endpoint in singles}
    ours: dict[str, list[float]] = {name: [] for name, _ in singles}
    theirs: dict[str, list[float]] = {name: [] for name, _ in singles}
    whole_ours: dict[str, list[float]] = {e.name: [] for e, _ in groups}
    whole_theirs: dict[str, list[float]] = {e.name: [] for e, _ in groups}
    with Blackbox(modules, folder) as blackbox:

        def certmon(name: str) -> float:
            return _timed(lambda: collector.collect(name, Deadline.after(10)))

        def exporter(name: str, endpoint: Endpoint) -> float:
            result = blackbox.probe(name, f"{endpoint.addresses[0]}:{endpoint.port}")
            return result["probe_duration_seconds"][0][1]

        for round_ in range(warmup + rounds):
            latest: dict[str, float] = {}
            for name, endpoint in singles:
                # Alternate the order so neither prober always finds the server warm.
                if round_ % 2:
                    mine, other = certmon(name), exporter(name, endpoint)
                else:
                    other, mine = exporter(name, endpoint), certmon(name)
                latest[name] = other
                if round_ >= warmup:
                    ours[name].append(mine)
                    theirs[name].append(other)
            for endpoint, names in groups:
                mine = certmon(endpoint.name)
                if round_ >= warmup:
                    whole_ours[endpoint.name].append(mine)
                    whole_theirs[endpoint.name].append(sum(latest[n] for n in names))
    print("TLS probe: certmon TlsCollector.collect wall time vs blackbox_exporter probe_duration_seconds")
    print(f"{rounds} rounds, medians; endpoints served on loopback by a separate process\n")
    print(f"{'per address':28} {'certmon ms':>11} {'blackbox ms':>12} {'ratio':>7}")
    ratios = []
    for name, _ in singles:
        mine, other = statistics.median(ours[name]), statistics.median(theirs[name])
        ratios.append(mine / other)
        print(f"{name:28} {mine * 1000:11.3f} {other * 1000:12.3f} {mine / other:7.2f}")
    total_mine = statistics.median([sum(v) for v in zip(*ours.values(), strict=True)])
    total_other = statistics.median([sum(v) for v in zip(*theirs.values(), strict=True)])
    print(
        f"{'all addresses, one round':28} {total_mine * 1000:11.3f} {total_other * 1000:12.3f} "
        f"{total_mine / total_other:7.2f}"
    )
    print(f"geometric mean of the per-address ratios: {statistics.geometric_mean(ratios):.2f}\n")
    print(f"{'per endpoint (all its nodes)':28} {'certmon ms':>11} {'blackbox ms':>12} {'ratio':>7}")
    for endpoint, names in groups:
        mine = statistics.median(whole_ours[endpoint.name])
        other = statistics.median(whole_theirs[endpoint.name])
        print(
            f"{endpoint.name + f' ({len(names)} nodes)':28} {mine * 1000:11.3f} {other * 1000:12.3f} "
            f"{mine / other:7.2f}"
        )
    return {"ratio": total_mine / total_other, "geometric_mean": statistics.geometric_mean(ratios)}


if __name__ == "__main__":
    raise SystemExit(main())
