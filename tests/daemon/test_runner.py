"""The runner: deadlines, last good data kept stale, error counts, logging once per change."""

from __future__ import annotations

import contextlib
import logging
import os
import threading
import time
from pathlib import Path

import pytest

from collectors.certfolder import CertFolderCollector
from collectors.clusterconfig import ClusterConfigFileCollector
from collectors.errors import Reason
from daemon.runner import Runner
from simulator.lab import Lab


def test_failure_keeps_last_good_data_and_recovery_clears_it(lab: Lab, caplog: pytest.LogCaptureFixture) -> None:
    collector = ClusterConfigFileCollector(lab.cluster_config)
    runner = Runner("lab", [collector])
    runner.run_source("clusterconfig")
    good = runner.snapshot().results[("clusterconfig", "ClusterConfig.json")]
    assert good.health.ok and not good.stale and good.observation is not None

    original = lab.cluster_config.read_bytes()
    lab.cluster_config.write_bytes(b'{"name": "broken"')
    caplog.set_level(logging.INFO, logger="certmon.runner")
    for _ in range(3):
        runner.run_source("clusterconfig")
    bad = runner.snapshot().results[("clusterconfig", "ClusterConfig.json")]
    assert not bad.health.ok and bad.stale
    assert bad.health.reason is Reason.PARSE_ERROR
    assert "invalid JSON" in bad.health.message and str(lab.cluster_config) in bad.health.message
    assert bad.observation is good.observation
    assert bad.health.last_success_at == good.health.last_success_at
    assert bad.errors_total == {Reason.PARSE_ERROR: 3}
    failing = [r for r in caplog.records if "failing" in r.getMessage()]
    assert len(failing) == 1, "a failure is logged once, not every cycle"

    lab.cluster_config.write_bytes(original)
    runner.run_source("clusterconfig")
    runner.run_source("clusterconfig")
    again = runner.snapshot().results[("clusterconfig", "ClusterConfig.json")]
    assert again.health.ok and not again.stale
    assert again.errors_total == {Reason.PARSE_ERROR: 3}, "the error counter is cumulative"
    assert len([r for r in caplog.records if "recovered" in r.getMessage()]) == 1


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="named pipes make a real blocking read")
def test_a_hung_target_costs_its_own_deadline_only(lab: Lab) -> None:
    # A FIFO with no writer blocks open() forever: a real hang inside the collector.
    fifo = lab.certs_dir / "AOS2" / "hung.pem"
    os.mkfifo(fifo)
    collector = CertFolderCollector(
        lab.certs_dir, lab.password.encode(), nodes=("SQL1", "AOS2", "MR1", "BI1"), timeout=5.0, concurrency=4
    )
    attempts: list[str] = []
    original = collector.collect

    def counting(target: str, deadline):  # type: ignore[no-untyped-def]
        attempts.append(target)
        return original(target, deadline)

    collector.collect = counting  # type: ignore[method-assign]
    runner = Runner("lab", [collector])
    started = time.monotonic()
    runner.run_source("certfolder")
    elapsed = time.monotonic() - started
    try:
        results = runner.snapshot().results
        assert results[("certfolder", "AOS2")].health.reason is Reason.TIMEOUT
        assert "no answer within 5 s" in results[("certfolder", "AOS2")].health.message
        others = [r for k, r in results.items() if k[1] != "AOS2"]
        assert len(others) == 3 and all(r.health.ok for r in others)
        assert elapsed < 20, f"one hung node held the cycle for {elapsed:.1f} s"

        # The abandoned attempt is still blocked: the next cycle must not start a second one
        # (nor a thread for it: the runner keeps its threads, so count the attempts themselves).
        runner.run_source("certfolder")
        assert attempts.count("AOS2") == 1 and len(attempts) == 7
        assert runner.overrunning("certfolder") == ["AOS2"]
        assert "still running" in runner.snapshot().results[("certfolder", "AOS2")].health.message
    finally:
        # Release the blocked reader (if any) so the thread ends; never block the test on it.
        with contextlib.suppress(OSError):
            os.close(os.open(fifo, os.O_WRONLY | os.O_NONBLOCK))


def test_concurrency_is_bounded(lab: Lab, tmp_path: Path) -> None:
    collector = CertFolderCollector(lab.certs_dir, lab.password.encode(), concurrency=2)
    peak = 0
    live = 0
    lock = threading.Lock()
    original = collector.collect

    def counting(target: str, deadline):  # type: ignore[no-untyped-def]
        nonlocal peak, live
        with lock:
            live += 1
            peak = max(peak, live)
        try:
            time.sleep(0.05)
            return original(target, deadline)
        finally:
            with lock:
                live -= 1

    collector.collect = counting  # type: ignore[method-assign]
    Runner("lab", [collector]).run_source("certfolder")
    assert peak == 2


def test_removed_targets_are_forgotten(lab: Lab) -> None:
    collector = CertFolderCollector(lab.certs_dir, lab.password.encode())
    runner = Runner("lab", [collector])
    runner.run_source("certfolder")
    assert ("certfolder", "MR1") in runner.snapshot().results
    for child in (lab.certs_dir / "MR1").rglob("*"):
        if child.is_file():
            child.unlink()
    (lab.certs_dir / "MR1" / "Root").rmdir()
    (lab.certs_dir / "MR1").rmdir()
    runner.run_source("certfolder")
    assert ("certfolder", "MR1") not in runner.snapshot().results
