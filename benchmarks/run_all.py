"""Every benchmark figure, measured in one run and printed side by side.

    .venv/bin/python benchmarks/run_all.py            # the figures the README quotes (~10 min on 2 cores)
    .venv/bin/python benchmarks/run_all.py --quick    # small sizes: a smoke test of every row
    .venv/bin/python benchmarks/run_all.py --verbose  # also each benchmark's own detailed output
    .venv/bin/python benchmarks/run_all.py --only winrm metrics   # some sections only

Each row comes from the benchmark script named in it (run that script alone for its details).
The WinRM rows run in a child process, so that its RSS is the collector's own; the soak runs its
daemon in a child process too. Everything else runs here, one after the other.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import os
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(HERE))


@dataclass(frozen=True)
class Row:
    """One figure."""

    figure: str
    value: float
    unit: str
    target: str
    script: str


@dataclass(frozen=True)
class Sizes:
    """How big each benchmark runs."""

    winrm: tuple[int, int, float, int, int]  # nodes, certs, latency, pool, cycles
    metrics_rounds: int
    parse: tuple[int, int]
    tls: tuple[int, int]
    soak: tuple[int, int]  # cycles, nodes
    sf_rounds: int
    inspect: tuple[int, int]  # PEM files, rounds
    pfx: int


FULL = Sizes((200, 100, 0.05, 50, 3), 15, (2000, 7), (200, 10), (1000, 50), 30, (1000, 5), 200)
QUICK = Sizes((10, 5, 0.01, 10, 1), 2, (100, 1), (3, 1), (12, 3), 2, (20, 1), 4)


def _child_json(script: str, *args: str) -> dict[str, Any]:
    """Run a benchmark script with --json in a process of its own; its last line's figures."""
    done = subprocess.run(
        [sys.executable, str(HERE / script), "--json", *args],
        capture_output=True,
        text=True,
        check=False,
        cwd=ROOT,
    )
    if done.returncode != 0:
        # The child's own error, not only its exit status: a failing benchmark must say why.
        raise RuntimeError(f"{script} {' '.join(args)} exited with {done.returncode}:\n{done.stderr[-2000:]}")
    figures: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    return figures


def winrm_rows(sizes: Sizes) -> list[Row]:
    """Requests per node per cycle, cycle / network-ideal and the collector's RSS, from a child process."""
    nodes, certs, latency, pool, cycles = sizes.winrm
    r = _child_json(
        "bench_winrm.py",
        *("--nodes", str(nodes), "--certs", str(certs)),
        *("--latency", str(latency), "--pool", str(pool), "--cycles", str(cycles)),
    )
    script = "bench_winrm.py"
    where = f"{nodes} nodes x {certs} certs, pool {pool}"
    return [
        Row(f"WinRM HTTP requests per node per cycle ({where})", r["requests_per_node"], "", "steady", script),
        Row(f"WinRM cycle / network-ideal ({where}, {latency * 1000:.0f} ms)", r["ratio"], "x", "", script),
        Row(f"WinRM collector CPU per node per steady cycle ({where})", r["cpu_ms_per_node"], "ms", "<= 2", script),
        Row("RSS of the collecting process after those cycles", r["rss_kib"] / 1024, "MiB", "", script),
    ]


def metrics_rows(sizes: Sizes) -> list[Row]:
    """/metrics scrape CPU, certmon / bare prometheus_client server; the certificate record / its floor."""
    from bench_core import bench_metrics, bench_parse

    m = bench_metrics(sizes.metrics_rounds)
    p = bench_parse(*sizes.parse)
    series = f"{m['series']:.0f} certificate series"
    return [
        Row(
            f"/metrics scrape CPU / bare prometheus_client server ({series}, OpenMetrics+gzip)",
            m["ratio"],
            "x",
            "<= 0.1",
            "bench_core.py",
        ),
        Row(
            f"/metrics scrape CPU / bare prometheus_client server ({series}, plain text)",
            m["plain_ratio"],
            "x",
            "<= 0.1",
            "bench_core.py",
        ),
        Row("two scrapes' CPU / one evaluation's CPU", m["two_scrapes_per_evaluation"], "x", "<= 1", "bench_core.py"),
        Row(
            "rendering all four bodies / prometheus_client rendering both formats",
            m["render_ratio"],
            "x",
            "",
            "bench_core.py",
        ),
        Row(
            "certificate record (thumbprint + notAfter) / load_der + sha1 (new certificates)",
            p["cold"],
            "x throughput",
            ">= 0.8",
            "bench_core.py",
        ),
        Row(
            "thumbprint text + notAfter datetime alone, no record / load_der + sha1 (the bound for new certificates)",
            p["bound"],
            "x throughput",
            "",
            "bench_core.py",
        ),
        Row("certificate record / load_der + sha1 (seen before)", p["warm"], "x throughput", ">= 1.5", "bench_core.py"),
    ]


def cli_rows(sizes: Sizes) -> list[Row]:
    """certmon inspect / bare Python, --version, the first PFX cycle."""
    from bench_cli import bench_inspect, bench_pfx

    count, rounds = sizes.inspect
    i = bench_inspect(count, rounds)
    p = bench_pfx(sizes.pfx)
    return [
        Row(f"certmon inspect / bare Python ({count} PEM files, every field)", i["ratio"], "x", "<= 2", "bench_cli.py"),
        Row("certmon --version", i["version_s"], "s", "<= 0.15", "bench_cli.py"),
        Row(f"first cycle over {sizes.pfx} PFX files (RSA-2048)", p["ours_s"], "s", "<= 2", "bench_cli.py"),
        Row(f"first PFX cycle / cryptography load_pkcs12 ({sizes.pfx} files)", p["ratio"], "x", "", "bench_cli.py"),
    ]


def tls_rows(sizes: Sizes) -> list[Row]:
    """TLS probe, certmon / blackbox_exporter."""
    from bench_tls import measure

    from simulator.blackbox import find_blackbox

    if find_blackbox() is None:
        return [Row("TLS probe / blackbox_exporter (not installed)", float("nan"), "x", "<= 1.0", "bench_tls.py")]
    t = measure(*sizes.tls)
    return [Row("TLS probe / blackbox_exporter (every address, one round)", t["ratio"], "x", "<= 1.0", "bench_tls.py")]


def soak_rows(sizes: Sizes) -> list[Row]:
    """RSS and file descriptors over the soak."""
    from soak import soak

    cycles, nodes = sizes.soak
    s = soak(cycles, nodes)
    return [
        Row(f"soak RSS after {cycles} / after 10 cycles ({nodes} nodes)", s.rss_ratio, "x", "<= 1.05", "soak.py"),
        Row(
            f"soak RSS once warm: after {cycles} / after {s.warm.cycle} cycles", s.warm_ratio, "x", "<= 1.03", "soak.py"
        ),
        Row(f"soak open fds after {cycles} - after 10 cycles", s.late.fds - s.early.fds, "", "0", "soak.py"),
        Row(f"soak threads after {cycles} - after 10 cycles", s.late.tasks - s.early.tasks, "", "0", "soak.py"),
        Row(f"soak peak RSS ({nodes} nodes)", s.peak_rss_kib / 1024, "MiB", "", "soak.py"),
        Row("soak time per cycle", s.seconds_per_cycle * 1000, "ms", "", "soak.py"),
    ]


def other_rows(sizes: Sizes) -> list[Row]:
    """Service Fabric, SQL, evaluator and status page ratios."""
    import bench_evaluator
    import bench_sf
    import bench_sql
    import bench_status

    sf = bench_sf.measure(sizes.sf_rounds)
    sql = bench_sql.main()
    evaluator = bench_evaluator.main()
    status = bench_status.main()
    return [
        Row("SF gateway collection / requests.Session", sf["ratio"], "x", "", "bench_sf.py"),
        Row("SQL collection / bare pyodbc (PostgreSQL)", sql["ratio"], "x", "", "bench_sql.py"),
        Row("evaluation, whole catalogue / core rules (200 nodes)", evaluator["ratio"], "x", "", "bench_evaluator.py"),
        Row("status page build / metric families", status["page"], "x", "", "bench_status.py"),
    ]


def scale_rows(sizes: Sizes) -> list[Row]:
    """One store of 50,000 certificates: evaluation, status page and RSS, in a child process (its own RSS).

    Twice: with the certificates handed to the daemon as records, and collected over WinRM from a
    simulated node (its own process).
    """
    certs = 2_000 if sizes is QUICK else 50_000
    r = _child_json("bench_scale.py", "--certs", str(certs), "--history", str(10_000 if sizes is QUICK else 1_000_000))
    w = _child_json("bench_scale.py", "--certs", str(certs), "--history", "0", "--winrm")
    where = f"{certs} certificates in one store"
    return [
        Row(f"evaluation with {where}", r["evaluate_s"], "s", "<= 2", "bench_scale.py"),
        Row(f"evaluation with {where} / the lab alone", r["ratio"], "x", "", "bench_scale.py"),
        Row(f"status page, first build ({where})", r["first_page_s"], "s", "", "bench_scale.py"),
        Row(
            f"evaluation with {where}, sharing no /metrics part with the last",
            r["unshared_evaluate_s"],
            "s",
            "",
            "bench_scale.py",
        ),
        Row(f"peak RSS with {where}", r["evaluated_rss_mib"], "MiB", "<= 300", "bench_scale.py"),
        Row(f"RSS certmon adds over its input ({where})", r["added_rss_mib"], "MiB", "", "bench_scale.py"),
        Row(f"peak RSS, {where} collected over WinRM", w["evaluated_rss_mib"], "MiB", "<= 300", "bench_scale.py"),
        Row(f"/metrics bodies held ({where})", r["bodies_mib"], "MiB", "", "bench_scale.py"),
        Row(f"peak RSS with {where}, after a million history rows", r["rss_mib"], "MiB", "", "bench_scale.py"),
        Row("evaluation with history rows added / without", r["history_ratio"], "x", "~1", "bench_scale.py"),
    ]


SECTIONS: tuple[Callable[[Sizes], list[Row]], ...] = (
    winrm_rows,
    metrics_rows,
    cli_rows,
    tls_rows,
    soak_rows,
    other_rows,
    scale_rows,
)


def main(argv: list[str] | None = None) -> int:
    """Run every section, then print the table."""
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small sizes, for a smoke test")
    parser.add_argument("--verbose", action="store_true", help="also print each benchmark's own output")
    parser.add_argument(
        "--only",
        nargs="+",
        choices=[section.__name__.removesuffix("_rows") for section in SECTIONS],
        help="run only these sections (default: all)",
    )
    args = parser.parse_args(argv)
    sizes = QUICK if args.quick else FULL
    rows: list[Row] = []
    started = time.monotonic()
    for section in SECTIONS:
        if args.only and section.__name__.removesuffix("_rows") not in args.only:
            continue
        out = io.StringIO()
        with contextlib.redirect_stdout(sys.stdout if args.verbose else out):
            rows += section(sizes)
    load = " ".join(f"{x:.1f}" for x in os.getloadavg())
    print(
        f"certmon benchmarks{' (--quick)' if args.quick else ''}: {os.cpu_count()} CPUs, load average {load}, "
        f"{time.monotonic() - started:.0f} s"
    )
    width = max(len(r.figure) for r in rows)
    print(f"{'FIGURE':{width}}  {'VALUE':>9}  {'UNIT':12}  {'TARGET':8}  SCRIPT")
    for r in rows:
        print(f"{r.figure:{width}}  {r.value:9.3g}  {r.unit:12}  {r.target:8}  {r.script}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
