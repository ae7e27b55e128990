"""Soak: 1,000 accelerated collection cycles on a 50-node lab; memory, file descriptors and threads stay flat.

The lab (every file and SQL source of the generated environment) gets 50 nodes: 50 certificate
folders for the certfolder source, and 50 simulated WinRM nodes (NTLM, message encryption) that
run in this process. The daemon runs in a child process, so that what it measures is its own:
it runs the sources that are due, evaluates and builds the metric families, cycle after cycle,
with an injected clock moving one minute per cycle (no sleeping): the file and SQL sources run
every cycle, the 50 WinRM nodes every tenth (a 10-minute interval), and it reports its resident memory
(VmRSS), open file descriptors and threads after 10 cycles and after the last one.

    .venv/bin/python benchmarks/soak.py [--cycles 1000] [--nodes 50]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

NOW = datetime(2026, 11, 27, 12, 0, tzinfo=UTC)
CHECKPOINT = 10
#: the cycle after which memory should stay flat: ten WinRM rounds and the stores' caches warmed
WARM = 100
STEP = timedelta(seconds=60)
WINRM_INTERVAL = 600


@dataclass(frozen=True)
class Sample:
    """The daemon process's resources after some cycles."""

    cycle: int
    rss_kib: int
    anon_kib: int
    fds: int
    threads: int
    tasks: int
    #: what SQLite itself holds (its page cache, up to 2 MiB per connection by default), from sqlite3_memory_used
    sqlite_kib: int = 0


@dataclass(frozen=True)
class SoakResult:
    """What the soak measured: the samples at cycle 10 and at the end, and the time per cycle."""

    nodes: int
    cycles: int
    early: Sample
    late: Sample
    peak_rss_kib: int
    seconds_per_cycle: float
    #: every sample: after cycle 10, every 100 cycles, and after the last
    trail: tuple[Sample, ...] = ()

    @property
    def rss_ratio(self) -> float:
        """RSS after the last cycle / RSS after 10 cycles."""
        return self.late.rss_kib / self.early.rss_kib

    @property
    def warm(self) -> Sample:
        """The sample after cycle 100 (ten WinRM rounds), or the first one in a shorter soak."""
        return next((s for s in self.trail if s.cycle == WARM), self.early)

    @property
    def warm_ratio(self) -> float:
        """RSS after the last cycle / RSS after cycle 100: what is left once the caches are warm is growth."""
        return self.late.rss_kib / self.warm.rss_kib


def _status_kib(field: str) -> int:
    status = Path("/proc/self/status").read_text(encoding="ascii")
    return next(int(line.split()[1]) for line in status.splitlines() if line.startswith(f"{field}:"))


def _sqlite_memory() -> Any:
    """SQLite's sqlite3_memory_used() from the library the sqlite3 module uses (None where it cannot be found)."""
    import ctypes
    import ctypes.util

    name = ctypes.util.find_library("sqlite3")
    if name is None:
        return None
    try:
        used = ctypes.CDLL(name).sqlite3_memory_used
    except (OSError, AttributeError):
        return None
    used.restype = ctypes.c_int64
    return used


_SQLITE_USED = _sqlite_memory()


def _resources(cycle: int) -> Sample:
    return Sample(
        cycle=cycle,
        rss_kib=_status_kib("VmRSS"),
        anon_kib=_status_kib("RssAnon"),
        fds=len(os.listdir("/proc/self/fd")),
        threads=threading.active_count(),
        tasks=len(os.listdir("/proc/self/task")),
        sqlite_kib=int(_SQLITE_USED()) // 1024 if _SQLITE_USED is not None else 0,
    )


def child(config: Path, cycles: int, glibc_default: bool = False) -> None:
    """In the daemon's process: run the cycles back to back on an injected clock; print the samples as JSON."""
    from daemon.app import Daemon
    from daemon.malloctune import tune_malloc
    from daemon.settings import load_settings

    if not glibc_default:
        # As `certmon run` does (daemon/service.py): the soak measures the daemon as it runs.
        tune_malloc()

    settings = load_settings(config)
    moment = [NOW]
    daemon = Daemon(settings, clock=lambda: moment[0])
    # Each cycle is one minute on the injected clock; a source runs when its interval has passed,
    # as the scheduler would run it (the file and SQL sources every cycle, WinRM every tenth).
    every = {name: max(1, round(c.interval / STEP.total_seconds())) for name, c in daemon.collectors.items()}
    samples = []
    tracing = os.environ.get("SOAK_TRACEMALLOC")
    traced: list[Any] = []
    if tracing:
        import tracemalloc

        tracemalloc.start(int(tracing))
    started = time.perf_counter()
    try:
        for cycle in range(1, cycles + 1):
            for name, period in every.items():
                if (cycle - 1) % period == 0:
                    daemon.runner.run_source(name)
            daemon.publish()
            moment[0] += STEP
            if cycle in (CHECKPOINT, cycles) or cycle % 100 == 0:
                samples.append(_resources(cycle).__dict__)
                if tracing and cycle in (WARM, cycles):
                    traced.append(tracemalloc.take_snapshot())
    finally:
        daemon.stop()
    elapsed = time.perf_counter() - started
    if tracing:
        # Where the memory that stayed came from (to stderr: stdout carries the JSON).
        for stat in traced[1].compare_to(traced[0], "traceback")[:15]:
            print(stat, *stat.traceback.format()[-int(tracing) :], sep="\n  ", file=sys.stderr)
    print(
        json.dumps(
            {
                "samples": samples,
                # VmHWM, not ru_maxrss: Linux carries ru_maxrss over from the parent across exec.
                "peak_rss_kib": _status_kib("VmHWM"),
                "seconds": elapsed,
            }
        )
    )


def _node_folders(lab_certs: Path, target: Path, count: int) -> list[str]:
    """`count` node folders copied round-robin from the lab's nodes (NODE01, NODE02, ...)."""
    sources = sorted(p for p in lab_certs.iterdir() if p.is_dir())
    names = []
    for index in range(count):
        name = f"NODE{index + 1:02d}"
        shutil.copytree(sources[index % len(sources)], target / name)
        names.append(name)
    return names


def soak(cycles: int = 1000, nodes: int = 50, without: tuple[str, ...] = (), glibc_default: bool = False) -> SoakResult:
    """Build the lab, start the WinRM nodes, run the daemon's cycles in a child process."""
    import yaml

    from simulator.lab import build_lab, winrm_section
    from simulator.winrm import SimulatedFleet

    with tempfile.TemporaryDirectory(prefix="certmon-soak-") as folder:
        lab = build_lab(Path(folder) / "lab", now=NOW, port=0)
        names = _node_folders(lab.certs_dir, lab.root / "nodes", nodes)
        with SimulatedFleet() as fleet:
            for name in names:
                fleet.add(name, lab.root / "nodes" / name, lab.ntlm_user_file, pfx_password=lab.password.encode())
            config = yaml.safe_load(lab.config_file.read_text(encoding="utf-8"))
            config["sources"]["certfolder"]["path"] = "nodes"
            winrm = winrm_section(lab, fleet.addresses())
            winrm.update(config_template=None, nodes=names, interval_seconds=WINRM_INTERVAL)
            config["sources"]["winrm"] = winrm
            for name in without:
                config["sources"][name]["enabled"] = False
            lab.config_file.write_text(yaml.safe_dump(config, sort_keys=False), encoding="utf-8")
            env = {k: v for k, v in os.environ.items() if not k.startswith("CERTMON_")}
            env["PYTHONPATH"] = str(ROOT)
            done = subprocess.run(
                [
                    sys.executable,
                    str(Path(__file__).resolve()),
                    "--child",
                    str(lab.config_file),
                    "--cycles",
                    str(cycles),
                    *(["--glibc-default"] if glibc_default else []),
                ],
                capture_output=True,
                text=True,
                env=env,
                check=False,
            )
    if done.returncode != 0:
        raise RuntimeError(f"the soak's daemon failed: {done.stderr[-2000:]}")
    if os.environ.get("SOAK_TRACEMALLOC"):
        print(done.stderr, file=sys.stderr)
    report: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    trail = [Sample(**s) for s in report["samples"]]
    return SoakResult(
        nodes, cycles, trail[0], trail[-1], report["peak_rss_kib"], report["seconds"] / cycles, tuple(trail)
    )


def describe(result: SoakResult) -> str:
    """The soak's figures, one per line."""
    e, late = result.early, result.late
    return "\n".join(
        [
            f"soak: {result.cycles} cycles, {result.nodes} nodes (WinRM and certificate folders), "
            f"{result.seconds_per_cycle * 1000:.0f} ms per cycle",
            f"  RSS        after {e.cycle}: {e.rss_kib / 1024:7.1f} MiB   after {late.cycle}: "
            f"{late.rss_kib / 1024:7.1f} MiB   ratio {result.rss_ratio:.3f} (target <= 1.05)",
            f"  RSS        after {result.warm.cycle}: {result.warm.rss_kib / 1024:6.1f} MiB   after {late.cycle}: "
            f"{late.rss_kib / 1024:7.1f} MiB   ratio {result.warm_ratio:.3f} (target <= 1.03)",
            f"  RssAnon    after {e.cycle}: {e.anon_kib / 1024:7.1f} MiB   after {late.cycle}: "
            f"{late.anon_kib / 1024:7.1f} MiB",
            f"  open fds   after {e.cycle}: {e.fds:7d}       after {late.cycle}: {late.fds:7d}",
            f"  threads    after {e.cycle}: {e.threads:7d}       after {late.cycle}: {late.threads:7d}   "
            f"(kernel tasks {e.tasks} -> {late.tasks})",
            f"  peak RSS {result.peak_rss_kib / 1024:.1f} MiB",
            "  RSS MiB by cycle: " + ", ".join(f"{s.cycle}: {s.rss_kib / 1024:.1f}" for s in result.trail),
            "  SQLite MiB by cycle: " + ", ".join(f"{s.cycle}: {s.sqlite_kib / 1024:.1f}" for s in result.trail),
        ]
    )


def main() -> int:
    """Command line."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cycles", type=int, default=1000)
    parser.add_argument("--nodes", type=int, default=50)
    parser.add_argument("--without", nargs="*", default=[], help="sources to disable (to find a leak)")
    parser.add_argument(
        "--glibc-default",
        action="store_true",
        help="leave glibc's allocator settings alone (certmon run sets them: daemon/malloctune.py)",
    )
    parser.add_argument("--child", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child is not None:
        child(args.child, args.cycles, args.glibc_default)
        return 0
    print(describe(soak(args.cycles, args.nodes, tuple(args.without), args.glibc_default)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
