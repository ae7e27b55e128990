"""`benchmarks/run_all.py --quick` prints every figure, each a number (no timing is asserted)."""

from __future__ import annotations

import math
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
ROWS = (
    "WinRM HTTP requests per node per cycle",
    "WinRM cycle / network-ideal",
    "RSS of the collecting process",
    "/metrics scrape CPU / bare prometheus_client server (20000 certificate series, OpenMetrics+gzip)",
    "/metrics scrape CPU / bare prometheus_client server (20000 certificate series, plain text)",
    "two scrapes' CPU / one evaluation's CPU",
    "rendering all four bodies / prometheus_client rendering both formats",
    "certificate record (thumbprint + notAfter) / load_der + sha1 (new certificates)",
    "certificate record / load_der + sha1 (seen before)",
    "certmon inspect / bare Python (20 PEM files",
    "certmon --version",
    "first cycle over 4 PFX files",
    "first PFX cycle / cryptography load_pkcs12",
    "TLS probe / blackbox_exporter",
    "soak RSS after",
    "soak RSS once warm",
    "soak open fds",
    "soak threads",
    "soak peak RSS",
    "SF gateway collection / requests.Session",
    "SQL collection / bare pyodbc",
    "evaluation, whole catalogue / core rules",
    "status page build / metric families",
    "evaluation with 2000 certificates in one store",
    "peak RSS with 2000 certificates in one store",
    "evaluation with 2000 certificates in one store, sharing no /metrics part with the last",
    "RSS certmon adds over its input (2000 certificates in one store)",
    "/metrics bodies held (2000 certificates in one store)",
    "peak RSS, 2000 certificates in one store collected over WinRM",
)


@pytest.mark.slow
def test_quick_run_prints_every_row_as_a_number() -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("CERTMON_")}
    done = subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / "run_all.py"), "--quick"],
        capture_output=True,
        text=True,
        cwd=ROOT,
        env=env,
        timeout=900,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    lines = done.stdout.splitlines()
    assert lines[1].split()[:2] == ["FIGURE", "VALUE"]
    figures = {}
    for line in lines[2:]:
        label, value, *_ = re.split(r"\s{2,}", line)
        figures[label] = float(value)  # every row printed is a number
        assert not math.isnan(figures[label]), line
    for row in ROWS:
        # a row names its figure exactly, or is the one label it begins (labels may share a prefix)
        matches = [label for label in figures if label == row] or [label for label in figures if label.startswith(row)]
        assert len(matches) == 1, (row, matches)
