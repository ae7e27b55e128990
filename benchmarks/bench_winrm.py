"""WinRM collection at scale: 200 simulated nodes x 100 certificates, 50 ms per request.

The simulated nodes run in their own process (as real nodes would be elsewhere); this process runs
the collector through the daemon's runner, cycle after cycle, and prints, side by side:

* cycle wall time / network-ideal, where ideal = requests per node x latency x ceil(nodes / pool);
* HTTP requests per node per steady cycle and NTLM handshakes, counted by the nodes themselves;
* collector CPU seconds per 1,000 certificates, in steady cycles and in a cycle where every node
  renewed a certificate (nothing reused), the CPU the collector and the nodes spent per cycle
  (on a small machine they compete for the same cores, which the ideal does not count), and the
  collector's CPU per node per steady cycle (target <= 2 ms);
* with --profile N, the N hot spots of every collector thread over extra steady cycles (cProfile
  per thread, counting each thread's own CPU time; see threadprofile.py).
* the same node read with pywinrm's Session.run_cmd, for comparison (requests and time per call).

    .venv/bin/python benchmarks/bench_winrm.py [--nodes 200] [--certs 100] [--latency 0.05] [--pool 16 50]
        [--cycles 3] [--profile 40]
"""

from __future__ import annotations

import argparse
import contextlib
import json
import math
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from cryptography import x509  # noqa: E402
from cryptography.hazmat.primitives import hashes  # noqa: E402
from cryptography.hazmat.primitives.asymmetric import ec  # noqa: E402
from cryptography.hazmat.primitives.serialization import Encoding  # noqa: E402
from cryptography.x509.oid import NameOID  # noqa: E402
from threadprofile import ThreadProfiles  # noqa: E402

from collectors.winrm import WinRMCollector, WinRMOptions, exchange  # noqa: E402
from collectors.winrm.script import inventory_command  # noqa: E402
from daemon.malloctune import tune_malloc  # noqa: E402
from daemon.runner import Runner  # noqa: E402
from simulator.pki import make_certificate, pfx_bytes, rsa_key  # noqa: E402

USER, PASSWORD, PFX_PASSWORD = "CONTOSO\\svc-certmon", "Bench-Passw0rd!", b"pfx-pass"
SHARED_WITH_KEYS = 5  # role certificates installed on every node, with private keys (PFX)


_CA_KEY = ec.generate_private_key(ec.SECP256R1())


def node_certificate(name: str, index: int) -> bytes:
    """A node-specific certificate (RSA subject key, signed by an EC CA so building 20,000 is quick)."""
    now = datetime.now(UTC)
    host = f"{name.lower()}-{index}.contoso.lab"
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, host)]))
        .issuer_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "Bench CA")]))
        .public_key(rsa_key("bench-subject").public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(days=1))
        .not_valid_after(now + timedelta(days=30 + index % 700))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName(host)]), critical=False)
        .sign(_CA_KEY, hashes.SHA256())
    )
    return cert.public_bytes(Encoding.DER)


def build_nodes(root: Path, nodes: int, certs: int) -> list[str]:
    """Node folders: a few shared PFX role certificates plus node-specific certificates (DER)."""
    now = datetime.now(UTC)
    not_before, not_after = now - timedelta(days=10), now + timedelta(days=300)
    shared = [
        pfx_bytes(make_certificate(f"role{i}.contoso.lab", not_before=not_before, not_after=not_after), PFX_PASSWORD)
        for i in range(SHARED_WITH_KEYS)
    ]
    names = [f"NODE{n:03d}" for n in range(nodes)]
    for name in names:
        folder = root / name
        folder.mkdir(parents=True)
        for i, data in enumerate(shared):
            (folder / f"role{i}.pfx").write_bytes(data)
        for i in range(certs - SHARED_WITH_KEYS):
            (folder / f"cert{i:03d}.cer").write_bytes(node_certificate(name, i))
    return names


def replace_one_certificate(root: Path, names: list[str], round_: int) -> None:
    """Every node renews one certificate: its output changes and must be parsed again."""
    for name in names:
        (root / name / f"cert{round_ % 90:03d}.cer").write_bytes(node_certificate(name, 1000 + round_))


class Nodes:
    """The simulator process."""

    def __init__(self, root: Path, users: Path, password_file: Path, latency: float) -> None:
        self.process = subprocess.Popen(
            [
                sys.executable, "-m", "simulator.winrm", "--root", str(root), "--users", str(users),
                "--pfx-password-file", str(password_file), "--latency", str(latency),
            ],
            cwd=ROOT, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
        )  # fmt: skip
        self.addresses: dict[str, str] = json.loads(self._line())["addresses"]

    def _line(self) -> str:
        assert self.process.stdout is not None
        line = self.process.stdout.readline()
        if not line:
            raise RuntimeError("the simulator process ended")
        return line

    def ask(self, command: str) -> Any:
        """Send a command, return its JSON answer."""
        assert self.process.stdin is not None
        self.process.stdin.write(command + "\n")
        self.process.stdin.flush()
        return json.loads(self._line())

    def totals(self) -> dict[str, float]:
        """Counters summed over the nodes."""
        counters = self.ask("counters")
        keys = ("requests", "handshakes", "connections", "encrypted")
        return {k: float(sum(c[k] for c in counters.values())) for k in keys}

    def cpu_seconds(self) -> float:
        """CPU time of the simulator process so far (Linux /proc; 0 elsewhere)."""
        try:
            fields = Path(f"/proc/{self.process.pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            return 0.0
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    def close(self) -> None:
        """Stop the simulator."""
        with contextlib.suppress(RuntimeError, BrokenPipeError, json.JSONDecodeError):
            self.ask("quit")
        self.process.wait(timeout=30)


def cpu_seconds() -> float:
    """CPU time of this process (collector and runner only: the nodes run elsewhere)."""
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def run_pool(
    nodes: Nodes, root: Path, names: list[str], pool: int, latency: float, cycles: int, certs: int, profile: int = 0
) -> dict[str, float]:
    """Cold cycle then steady cycles with one pool size; `profile` > 0 prints that many hot spots of extra cycles."""
    options = WinRMOptions(username=USER, password=PASSWORD)
    collector = WinRMCollector(options, nodes=names, addresses=nodes.addresses, concurrency=pool, timeout=60)
    runner = Runner("bench", [collector])
    try:
        nodes.ask("reset")
        started = time.monotonic()
        runner.run_source("winrm")
        cold = time.monotonic() - started
        cold_totals = nodes.totals()
        walls, cpus, node_cpus = [], [], []
        nodes.ask("reset")
        for _ in range(cycles):
            cpu, node_cpu, started = cpu_seconds(), nodes.cpu_seconds(), time.monotonic()
            runner.run_source("winrm")
            walls.append(time.monotonic() - started)
            cpus.append(cpu_seconds() - cpu)
            node_cpus.append(nodes.cpu_seconds() - node_cpu)
        totals = nodes.totals()
        if profile:
            # Extra steady cycles, apart from the timed ones: profiling slows what it watches.
            # A runner of its own: its collection threads start inside the window (the runner keeps its threads).
            profiled = Runner("bench", [collector])
            with ThreadProfiles() as profiles:
                for _ in range(cycles):
                    profiled.run_source("winrm")
                # Its threads end here: a profile read while its thread still waits for work counts that wait.
                profiled.release_threads(timeout=10)
            print(f"pool {pool}: {cycles} steady cycles, {profiles.threads} threads profiled, by own time")
            print(profiles.print(profile))
        # One more cycle after every node renewed a certificate: nothing can be reused.
        replace_one_certificate(root, names, pool)
        cpu = cpu_seconds()
        runner.run_source("winrm")
        changed_cpu = cpu_seconds() - cpu
        failed = [r.target for r in runner.snapshot().of_source("winrm") if not r.health.ok]
        found = sum(len(r.observation.certificates) for r in runner.snapshot().of_source("winrm") if r.observation)
    finally:
        collector.close()
    steady_requests = totals["requests"] / (cycles * len(names))
    ideal = steady_requests * latency * math.ceil(len(names) / pool)
    wall = statistics.median(walls)
    return {
        "pool": pool,
        "cold_wall": cold,
        "cold_requests_per_node": cold_totals["requests"] / len(names),
        "wall": wall,
        "ideal": ideal,
        "ratio": wall / ideal,
        "requests_per_node": steady_requests,
        "handshakes_per_cycle": totals["handshakes"] / cycles,
        "cpu_per_1000_certs": statistics.median(cpus) / (found / 1000) if found else float("nan"),
        "changed_cpu_per_1000_certs": changed_cpu / (found / 1000) if found else float("nan"),
        "collector_cpu": statistics.median(cpus),
        "cpu_ms_per_node": statistics.median(cpus) / len(names) * 1000,
        "nodes_cpu": statistics.median(node_cpus),
        "certs": found,
        "failed": len(failed),
        "expected_certs": len(names) * certs,
    }


@contextlib.contextmanager
def _direct_exchange(enabled: bool) -> Iterator[None]:
    """With `enabled` False, sessions opened meanwhile keep pywinrm's send path (exchange.install does nothing)."""
    if enabled:
        yield
        return
    install = exchange.install
    exchange.install = lambda transport: False
    try:
        yield
    finally:
        exchange.install = install


def pywinrm_baseline(nodes: Nodes, names: list[str], calls: int) -> dict[str, float]:
    """What plain pywinrm costs per node: Session.run_cmd of the same inventory command."""
    import winrm

    executable, arguments = inventory_command(["LocalMachine\\My"])
    nodes.ask("reset")
    started = time.monotonic()
    for name in names[:calls]:
        url = f"http://{nodes.addresses[name]}/wsman"
        session = winrm.Session(url, auth=(USER, PASSWORD), transport="ntlm", message_encryption="always")
        result = session.run_cmd(executable, arguments)
        assert result.status_code == 0, result.std_err[:200]
    elapsed = time.monotonic() - started
    totals = nodes.totals()
    return {"seconds_per_call": elapsed / calls, "requests_per_call": totals["requests"] / calls}


def measure(
    nodes: int = 200, certs: int = 100, latency: float = 0.05, pool: int = 50, cycles: int = 3
) -> dict[str, float]:
    """One pool size, quietly: steady requests per node, cycle / network-ideal, and this process's RSS."""
    work = Path(tempfile.mkdtemp(prefix="bench-winrm-"))
    try:
        names = build_nodes(work / "nodes", nodes, certs)
        users = work / "users.txt"
        users.write_text(f"CONTOSO:svc-certmon:{PASSWORD}\n", encoding="utf-8")
        password_file = work / "pfx-password.txt"
        password_file.write_bytes(PFX_PASSWORD + b"\n")
        running = Nodes(work / "nodes", users, password_file, latency)
        try:
            result = run_pool(running, work / "nodes", names, pool, latency, cycles, certs)
        finally:
            running.close()
    finally:
        shutil.rmtree(work, ignore_errors=True)
    status = Path("/proc/self/status").read_text(encoding="ascii") if Path("/proc/self/status").exists() else ""
    rss = [int(line.split()[1]) for line in status.splitlines() if line.startswith("VmRSS:")]
    return {**result, "rss_kib": float(rss[0]) if rss else float("nan")}


def main() -> int:
    """Build the nodes, start them, measure."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--nodes", type=int, default=200)
    parser.add_argument("--certs", type=int, default=100)
    parser.add_argument("--latency", type=float, default=0.05)
    parser.add_argument("--pool", type=int, nargs="+", default=[16, 50])
    parser.add_argument("--cycles", type=int, default=3)
    parser.add_argument("--switch-interval", type=float, help="sys.setswitchinterval for the collector process")
    parser.add_argument("--json", action="store_true", help="first pool size only; print its figures as JSON")
    parser.add_argument(
        "--compare-requests-path",
        action="store_true",
        help="also run each pool size with every message sent through requests.Session (the path before exchange.py)",
    )
    parser.add_argument(
        "--profile", type=int, default=0, metavar="N", help="also profile every collector thread; print N hot spots"
    )
    parser.add_argument(
        "--glibc-default",
        action="store_true",
        help="leave glibc's allocator settings alone (certmon run fixes the mmap threshold and two arenas: daemon/malloctune.py)",
    )
    args = parser.parse_args()
    # As certmon run does: a Receive answer's buffers (hundreds of KiB each) are then mapped and unmapped every time.
    fixed = False if args.glibc_default else tune_malloc()
    if args.json:
        print(json.dumps(measure(args.nodes, args.certs, args.latency, args.pool[0], args.cycles)))
        return 0
    if args.switch_interval:
        sys.setswitchinterval(args.switch_interval)
    work = Path(tempfile.mkdtemp(prefix="bench-winrm-"))
    try:
        started = time.monotonic()
        names = build_nodes(work / "nodes", args.nodes, args.certs)
        users = work / "users.txt"
        users.write_text(f"CONTOSO:svc-certmon:{PASSWORD}\n", encoding="utf-8")
        password_file = work / "pfx-password.txt"
        password_file.write_bytes(PFX_PASSWORD + b"\n")
        print(f"{args.nodes} nodes x {args.certs} certificates built in {time.monotonic() - started:.1f} s")
        nodes = Nodes(work / "nodes", users, password_file, args.latency)
        try:
            print(f"latency {args.latency * 1000:.0f} ms per request; {args.cycles} steady cycles per pool size\n")
            load = " ".join(f"{x:.1f}" for x in os.getloadavg())
            print(f"{os.cpu_count()} CPUs, load average {load} (the nodes and this collector share them)")
            print(f"glibc allocator set as certmon run sets it: {'yes' if fixed else 'no'}\n")
            header = (
                f"{'pool':>5} {'cold s':>7} {'cold req/node':>13} {'steady s':>9} {'ideal s':>8} {'ratio':>6} "
                f"{'req/node':>8} {'handshakes':>10} {'CPU s/1000 certs':>16} {'(changed)':>9} {'collector CPU s':>15} "
                f"{'CPU ms/node':>11} "
                f"{'nodes CPU s':>11} {'certs':>7} {'failed':>6}"
            )
            print(header)
            runs = [(pool, True) for pool in args.pool]
            if args.compare_requests_path:
                runs = [(pool, direct) for pool in args.pool for direct in (False, True)]
            for pool, direct in runs:
                with _direct_exchange(direct):
                    r = run_pool(
                        nodes, work / "nodes", names, pool, args.latency, args.cycles, args.certs, args.profile
                    )
                label = f"{pool}" if direct else f"{pool}*"
                print(
                    f"{label:>5} {r['cold_wall']:>7.2f} {r['cold_requests_per_node']:>13.1f} {r['wall']:>9.2f} "
                    f"{r['ideal']:>8.2f} {r['ratio']:>6.2f} {r['requests_per_node']:>8.1f} "
                    f"{r['handshakes_per_cycle']:>10.0f} {r['cpu_per_1000_certs']:>16.3f} "
                    f"{r['changed_cpu_per_1000_certs']:>9.3f} {r['collector_cpu']:>15.2f} {r['cpu_ms_per_node']:>11.2f} "
                    f"{r['nodes_cpu']:>11.2f} {r['certs']:>7} {r['failed']:>6}"
                )
            if args.compare_requests_path:
                print(
                    "  * every message through requests.Session, as pywinrm sends it (collectors/winrm/exchange.py off)"
                )
            base = pywinrm_baseline(nodes, names, calls=10)
            print(
                f"\npywinrm Session.run_cmd, same command, one node at a time: {base['requests_per_call']:.1f} "
                f"requests and {base['seconds_per_call']:.2f} s per node per cycle (a new logon and shell each call)"
            )
        finally:
            nodes.close()
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
