"""Scale benchmark: one Windows store holding N certificates (50,000 by default), side by side with the lab.

The lab's file sources plus one node whose LocalMachine\\My holds N extra certificates (one
EC key, distinct serials and names), as a WinRM source would report it. Measured in one run:
the evaluation (rules + rotation checklist + metric families) with and without the big store,
the status page built from that evaluation, and the process's peak RSS, with its resident
memory after and during each phase. The input (N DERs parsed into certificate records, which
the daemon would hold too: its collectors' answers, interned by collectors.certificate) is
built first; "certmon's work over its input" is the peak from the first collection on minus
the resident memory once the input exists. The absolute peak is printed beside it. With
--winrm the store is instead collected over the real protocol from a simulated WinRM node
(simulator.winrm, its own process), so parsing the answers counts as certmon's work too.

Run: .venv/bin/python benchmarks/bench_scale.py [--certs N] [--repeat N] [--history ROWS] [--winrm] [--profile] [--json]
"""

from __future__ import annotations

import argparse
import contextlib
import cProfile
import json
import math
import pstats
import resource
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import Encoding
from cryptography.x509.oid import NameOID

from collectors.base import Collector, Deadline
from collectors.certificate import certificate_from_der
from collectors.model import CertObservation, Observation
from collectors.winrm import WinRMCollector, WinRMOptions
from daemon.app import Daemon
from daemon.malloctune import tune_malloc
from daemon.settings import load_settings
from daemon.sources.registry import build_collectors
from daemon.status import status_document
from daemon.statuspage import render_page
from simulator.lab import build_lab

NOW = datetime(2026, 11, 27, 12, tzinfo=UTC)
STORE = "LocalMachine\\My"
WINRM_PASSWORD = "Scale-Passw0rd!"


def make_ders(count: int) -> list[bytes]:
    """`count` distinct certificates issued by one CA, all with one EC key (fast to make, as real to parse)."""
    key = ec.generate_private_key(ec.SECP256R1())
    public = key.public_key()
    issuer = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "Scale Issuing CA")])
    out = []
    for i in range(count):
        name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, f"app{i}.scale.lab")])
        cert = (
            x509.CertificateBuilder()
            .subject_name(name)
            .issuer_name(issuer)
            .public_key(public)
            .serial_number(1_000_000 + i)
            .not_valid_before(NOW - timedelta(days=1))
            .not_valid_after(NOW + timedelta(days=40 + i % 700))
            .sign(key, hashes.SHA256())
        )
        out.append(cert.public_bytes(Encoding.DER))
    return out


class BigStore(Collector):
    """One node whose store holds every certificate given (parsed once, as the WinRM collector caches them)."""

    name = "winrm"

    def __init__(self, ders: list[bytes], node: str = "AOS1") -> None:
        super().__init__(timeout=600, interval=300)
        self.node = node
        self.certs = [certificate_from_der(d) for d in ders]

    def targets(self) -> tuple[str, ...]:
        return (self.node,)

    def collect(self, target: str, deadline: Deadline) -> Observation:
        return Observation(
            certificates=tuple(CertObservation(c, self.name, target, STORE, has_private_key=True) for c in self.certs)
        )


class WinRMNode:
    """AOS1 as a simulated WinRM node (simulator.winrm, its own process) whose store holds the certificates."""

    def __init__(self, root: Path, ders: list[bytes], node: str = "AOS1") -> None:
        folder = root / node
        folder.mkdir(parents=True)
        for i, der in enumerate(ders):
            (folder / f"cert{i:05d}.cer").write_bytes(der)
        users = root.parent / "winrm-users.txt"
        users.write_text(f"CONTOSO:svc-certmon:{WINRM_PASSWORD}\n", encoding="utf-8")
        self.node = node
        self.process = subprocess.Popen(
            [sys.executable, "-m", "simulator.winrm", "--root", str(root), "--users", str(users)],
            cwd=Path(__file__).resolve().parent.parent,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        assert self.process.stdout is not None
        self.addresses: dict[str, str] = json.loads(self.process.stdout.readline())["addresses"]

    def collector(self) -> Collector:
        """The daemon's WinRM collector, pointed at the node."""
        options = WinRMOptions(username="CONTOSO\\svc-certmon", password=WINRM_PASSWORD)
        return WinRMCollector(options, nodes=[self.node], addresses=self.addresses, concurrency=1, timeout=600)

    def close(self) -> None:
        """Stop the node's process (started here)."""
        assert self.process.stdin is not None
        with contextlib.suppress(BrokenPipeError, OSError):
            self.process.stdin.write("quit\n")
            self.process.stdin.flush()
        try:
            self.process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()


def _median(run: Callable[[], object], repeat: int) -> float:
    times = []
    for _ in range(repeat):
        started = time.perf_counter()
        run()
        times.append(time.perf_counter() - started)
    return statistics.median(times)


def _with_history(daemon: Daemon, rows: int, repeat: int) -> float:
    """The evaluation again after `rows` location history rows (half of them removals) joined the store."""
    t = NOW.timestamp()
    raw = sqlite3.connect(daemon.store.path, isolation_level=None)
    raw.execute("BEGIN")
    raw.executemany(
        "INSERT INTO cert_location (source, node, store, thumbprint, target, subject_cn, first_seen, last_seen,"
        " last_absent, present) VALUES ('winrm', ?, 'LocalMachine\\My', ?, ?, 'old.example', ?, ?, ?, ?)",
        ((f"N{i % 500}", f"{i:040X}", f"N{i % 500}", t - 86400, t, t if i % 2 else None, i % 2) for i in range(rows)),
    )
    raw.execute("COMMIT")
    raw.close()
    return _median(daemon.publish, repeat)


def rss_mib() -> float:
    """Peak resident set size of this process so far."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


class Phases:
    """Resident memory after each phase, and its peak during the phase where the kernel can say.

    Linux resets the peak (VmHWM) when "5" is written to /proc/self/clear_refs; elsewhere only
    the process's lifetime peak is known, and the per-phase peak column says so (nan).
    """

    def __init__(self) -> None:
        self.rows: list[tuple[str, float, float]] = []
        self._resettable = self._reset_peak()

    @staticmethod
    def _status(field: str) -> float:
        try:
            with open("/proc/self/status", encoding="ascii") as status:
                for line in status:
                    if line.startswith(field + ":"):
                        return int(line.split()[1]) / 1024
        except OSError:
            pass
        return float("nan")

    @staticmethod
    def _reset_peak() -> bool:
        try:
            with open("/proc/self/clear_refs", "w", encoding="ascii") as refs:
                refs.write("5")
        except OSError:
            return False
        return True

    def mark(self, phase: str) -> float:
        """Record the phase just finished; return the resident memory now."""
        now = self._status("VmRSS")
        peak = self._status("VmHWM") if self._resettable else float("nan")
        self.rows.append((phase, now, max(peak, now)))
        self._resettable = self._reset_peak()
        return now

    def peak_since(self, phase: str) -> float:
        """The highest per-phase peak from `phase` on (the lifetime peak where phases cannot be told apart)."""
        names = [row[0] for row in self.rows]
        peaks = [row[2] for row in self.rows[names.index(phase) :]]
        return max(peaks) if not any(math.isnan(p) for p in peaks) else rss_mib()


def main(argv: list[str] | None = None) -> dict[str, float]:
    """Print the figures and their ratios; return them."""
    parser = argparse.ArgumentParser()
    parser.add_argument("--certs", type=int, default=50_000)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--profile", action="store_true", help="print the top of a cProfile of one evaluation")
    parser.add_argument("--json", action="store_true", help="end with one JSON line of the figures")
    parser.add_argument("--history", type=int, default=1_000_000, help="location history rows added to the store")
    parser.add_argument(
        "--winrm",
        action="store_true",
        help="the big store comes from a simulated WinRM node in its own process, over the real protocol, "
        "instead of records handed over in this process",
    )
    parser.add_argument(
        "--glibc-default",
        action="store_true",
        help="leave glibc's allocator settings alone (certmon run sets them: daemon/malloctune.py)",
    )
    args = parser.parse_args(argv)
    # As `certmon run` does before it builds the daemon.
    fixed = False if args.glibc_default else tune_malloc()

    phases = Phases()
    root = Path(tempfile.mkdtemp())
    lab = build_lab(root / "lab", now=NOW, port=0)
    settings = load_settings(lab.config_file).model_copy(update={"data_dir": root / "data"})
    base_rss = rss_mib()
    phases.mark("Python, certmon's imports, the lab's files")
    started = time.perf_counter()
    ders = make_ders(args.certs)
    make_s = time.perf_counter() - started

    small = Daemon(settings.model_copy(update={"data_dir": root / "small"}), clock=lambda: NOW)
    small.collect_once()
    small_s = _median(small.publish, args.repeat)
    small.stop()
    del small

    node: WinRMNode | None = None
    big: Collector
    if args.winrm:
        node = WinRMNode(root / "nodes", ders)
        big = node.collector()
        del ders
        # The certificates are files of the simulated node (another process): parsing them is certmon's work.
        input_rss = phases.mark(f"+ a WinRM node serving {args.certs} certificates (its own process)")
    else:
        big = BigStore(ders)
        del ders
        # What the daemon would hold anyway: the WinRM collector's answers parsed into certificate records
        # (interned by collectors.certificate). From here on, everything is certmon's work.
        input_rss = phases.mark(f"+ {args.certs} DERs parsed into records (the input)")
    daemon = Daemon(settings, collectors=[*build_collectors(settings), big], clock=lambda: NOW)
    started = time.perf_counter()
    daemon.runner.run_once()
    phases.mark("+ first collection (observations, location store)")
    daemon.publish()
    first_s = time.perf_counter() - started
    phases.mark("+ first evaluation (view, four /metrics bodies)")
    if args.profile:
        profile = cProfile.Profile()
        profile.enable()
        daemon.publish()
        profile.disable()
        pstats.Stats(profile).sort_stats("cumulative").print_stats(30)
    evaluate_s = _median(daemon.publish, args.repeat)
    phases.mark(f"+ {args.repeat} evaluations (each beside the view it replaces)")
    # The worst case: every large family changed since the view being served, so the new bodies share
    # nothing with the old ones (daemon.exposition reuses equal parts) and both sets are whole at once.
    served = daemon.view
    daemon.view = replace(served, exposition=replace(served.exposition, shared={}))
    del served
    started = time.perf_counter()
    daemon.publish()
    unshared_s = time.perf_counter() - started
    phases.mark("+ an evaluation sharing no part with the view it replaces")
    # A scheduled cycle: every source collected again beside the view still served, then published.
    started = time.perf_counter()
    daemon.runner.run_once()
    phases.mark("+ a later collection, beside the view served")
    daemon.publish()
    cycle_s = time.perf_counter() - started
    view = daemon.view
    phases.mark("+ its evaluation")
    started = time.perf_counter()
    render_page(status_document(view, settings))
    first_page_s = time.perf_counter() - started
    page_s = _median(lambda: render_page(status_document(view, settings)), args.repeat)
    phases.mark("+ status document and page")
    # Before the history rows: what 50,000 certificates cost (the rows' insertion runs in this process).
    evaluated_rss = phases.peak_since(phases.rows[0][0])
    added_rss = phases.peak_since(phases.rows[2][0]) - input_rss
    history_s = _with_history(daemon, args.history, args.repeat) if args.history else float("nan")
    phases.mark(f"+ {args.history} history rows inserted here, evaluations")
    series = sum(len(f.samples) for f in view.families)
    bodies = view.exposition.nbytes / 2**20
    daemon.stop()
    if node is not None:
        node.close()
    peak = phases.peak_since(phases.rows[0][0])

    how = "collected over WinRM from a simulated node" if args.winrm else "handed to the daemon as records"
    print(f"{args.certs} certificates in {STORE} of one node (+ the lab), {how}; made in {make_s:.1f} s")
    print(f"glibc allocator set as certmon run does (mmap threshold, arenas): {'yes' if fixed else 'no'}")
    print(f"first collection + evaluation:                {first_s:8.2f} s")
    print(f"evaluation of the lab alone:                  {small_s * 1000:8.1f} ms")
    print(f"evaluation with the big store:                {evaluate_s * 1000:8.1f} ms   (goal <= 2000 ms)")
    print(f"ratio big / lab:                              {evaluate_s / small_s:8.1f}")
    print(f"evaluation sharing no /metrics part:          {unshared_s * 1000:8.1f} ms   (every family rendered anew)")
    print(f"a later collection of every source + evaluation: {cycle_s:5.2f} s")
    print(f"evaluation after {args.history} history rows:     {history_s * 1000:8.1f} ms")
    print(f"status document + page, first / later:        {first_page_s * 1000:8.1f} / {page_s * 1000:.1f} ms")
    print(f"metric series:                                {series:8d}")
    print(f"/metrics bodies held (four, shared parts once): {bodies:6.1f} MiB")
    print("resident memory by phase (MiB):                           after   peak during")
    for phase, now, during in phases.rows:
        print(f"  {phase:54s} {now:6.0f} {during:6.0f}")
    print(
        f"peak RSS before the history rows:             {evaluated_rss:8.0f} MiB   (goal <= 300; {base_rss:.0f} before)"
    )
    print(f"of which certmon's work over its input:       {added_rss:8.0f} MiB   (peak - {input_rss:.0f} MiB)")
    print(f"peak RSS:                                     {peak:8.0f} MiB")
    figures = {
        "evaluate_s": evaluate_s,
        "first_page_s": first_page_s,
        "page_s": page_s,
        "rss_mib": peak,
        "evaluated_rss_mib": evaluated_rss,
        "input_rss_mib": input_rss,
        "added_rss_mib": added_rss,
        "bodies_mib": bodies,
        "ratio": evaluate_s / small_s,
        "unshared_evaluate_s": unshared_s,
        "history_ratio": history_s / evaluate_s,
    }
    if args.json:
        print(json.dumps(figures))
    return figures


if __name__ == "__main__":
    main()
