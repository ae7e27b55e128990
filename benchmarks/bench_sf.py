"""Service Fabric gateway collection vs the same requests through `requests`, side by side.

The lab's services (the simulated gateway among them) run in a separate process. Each round
collects the cluster once with certmon's ServiceFabricCollector (one verified mutual-TLS
connection, kept alive for every call of the cycle) and replays the same GETs through a
`requests.Session` with the client certificate as PEM files (verify off: it cannot pin a list of
thumbprints), then once more with certmon's client opening a new connection per request.
Prints medians and the ratios certmon ÷ requests and keep-alive ÷ a connection per request.

    python benchmarks/bench_sf.py [--rounds 30]
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
import warnings
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import requests  # noqa: E402
from cryptography.hazmat.primitives.serialization import Encoding, NoEncryption, PrivateFormat, pkcs12  # noqa: E402

from collectors.base import Deadline  # noqa: E402
from collectors.servicefabric.client import GatewaySession, GatewayUrl, ServerTrust  # noqa: E402
from collectors.servicefabric.collector import ServiceFabricCollector  # noqa: E402
from collectors.servicefabric.connector import Connector, GatewayConfig  # noqa: E402
from collectors.servicefabric.identity import CertificateFile  # noqa: E402


class RecordingConnector(Connector):
    """Keeps the calls of the last collection, to replay them elsewhere."""

    calls: list[tuple[str, dict[str, str]]]

    def open(self, certificate: CertificateFile | None, deadline: Deadline) -> GatewaySession:
        session = super().open(certificate, deadline)
        self.calls = []
        original = session.request

        def request(method: str, path: str, params: Any, body: Any = None) -> tuple[int, bytes]:
            self.calls.append((path, dict(params)))
            return original(method, path, params, body)

        session.request = request  # type: ignore[method-assign]
        return session


def main() -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--rounds", type=int, default=30)
    args = parser.parse_args()
    measure(args.rounds)
    return 0


def measure(rounds: int) -> dict[str, float]:
    """Start the lab's services in a separate process and collect the cluster both ways; the figures."""
    folder = Path(tempfile.mkdtemp(prefix="certmon-bench-sf-"))
    services = subprocess.Popen(
        [sys.executable, "-m", "simulator.services", str(folder / "lab")],
        cwd=ROOT,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert services.stdout is not None
        report = json.loads(services.stdout.readline())
        return run(report, folder, rounds)
    finally:
        assert services.stdin is not None
        services.stdin.close()
        services.wait(timeout=30)


def run(report: dict[str, Any], folder: Path, rounds: int) -> dict[str, float]:
    root = Path(report["root"])
    section = report["servicefabric"]
    password = (root / section["client_certificate"]["password_file"]).read_text().strip().encode()
    pfx = root / section["client_certificate"]["path"]
    url = GatewayUrl.parse(section["gateways"][0], section["resolve"])
    config = GatewayConfig(
        "D365FOCluster",
        (url,),
        ServerTrust(ca_bundle=root / section["ca_bundle"]),
        CertificateFile(pfx, password=password),
    )
    collector = ServiceFabricCollector(config)
    connector = RecordingConnector(config, collector.connector.clock)
    collector.connector = connector
    # requests needs the key on disk: unpack the PFX into a private folder for the baseline only.
    key, cert, _extra = pkcs12.load_key_and_certificates(pfx.read_bytes(), password)
    assert key is not None and cert is not None
    pem = folder / "client.pem"
    pem.write_bytes(
        cert.public_bytes(Encoding.PEM) + key.private_bytes(Encoding.PEM, PrivateFormat.PKCS8, NoEncryption())
    )
    base = f"https://{url.address}:{url.port}"

    def certmon() -> None:
        collector.collect("D365FOCluster", Deadline.after(30))

    def with_requests() -> None:
        with requests.Session() as session, warnings.catch_warnings():
            warnings.simplefilter("ignore")
            for path, params in connector.calls:
                session.get(base + path, params=params, cert=str(pem), verify=False, timeout=30).raise_for_status()

    plain = Connector(config, collector.connector.clock)

    def per_request() -> None:
        for path, params in list(connector.calls):
            session = plain.open(config.client_certificate, Deadline.after(30))
            try:
                session.get(path, params)
            finally:
                session.close()

    certmon()
    requests_per_cycle = len(connector.calls)
    timings: dict[str, list[float]] = {"certmon": [], "requests": [], "per_request": []}
    for index in range(rounds):
        order = [("certmon", certmon), ("requests", with_requests), ("per_request", per_request)]
        if index % 2:
            order.reverse()
        for name, action in order:
            started = time.perf_counter()
            action()
            timings[name].append(time.perf_counter() - started)
    medians = {name: statistics.median(values) for name, values in timings.items()}
    print(f"requests per collection: {requests_per_cycle} (one TLS connection)")
    for name, value in medians.items():
        print(f"{name:12s} median {value * 1000:7.1f} ms")
    print(f"certmon / requests.Session (same GETs, verify off): {medians['certmon'] / medians['requests']:.2f}")
    print(f"keep-alive / a connection per request:              {medians['certmon'] / medians['per_request']:.2f}")
    return {"ratio": medians["certmon"] / medians["requests"], "keepalive": medians["certmon"] / medians["per_request"]}


if __name__ == "__main__":
    raise SystemExit(main())
