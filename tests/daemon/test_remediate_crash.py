"""SIGKILL `certmon remediate localagent-config-update --apply` at random points, many times.

After every kill the file must hold exactly the old or exactly the new bytes, and a re-run
must complete. A third of the kills land at a uniformly random moment of the whole run
(start-up, collection, planning, the change, the re-collection, shut-down); the rest land at
a random moment after the intent journal appears, the few milliseconds in which the backup,
the temporary file, the rename, the verification and the audit happen. No hook in the
product: the test only watches the file system and picks the moment.
"""

from __future__ import annotations

import dataclasses
import json
import os
import random
import shutil
import signal
import subprocess
import sys
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import pytest

from daemon.state import StateStore
from remediations.audit import AUDIT_FILE, JsonlAuditLog
from simulator.lab import Lab

ROOT = Path(__file__).resolve().parents[2]
NAME = "localagent-config-update"
RUNS_PER_WORKER = 27
WORKERS = 2
TERMINAL = {"applied", "failed", "rolled-back", "interrupted"}


@dataclass(frozen=True)
class Kill:
    """One killed run: how it was timed, what the file held afterwards, what the re-run did."""

    mode: str
    delay: float
    journal_at_kill: bool
    state: str
    rerun: str
    recovered: bool


def _env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("CERTMON_")}
    env["PYTHONPATH"] = str(ROOT)
    return env


def _apply(lab: Lab) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "daemon", "-c", str(lab.config_file), "remediate", NAME, "--apply", "--format", "json"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=_env(),
        cwd=ROOT,
    )


def _journal(lab: Lab) -> Path:
    return lab.data_dir / "remediations" / "demo.journal.json"


def _leftovers(lab: Lab) -> list[Path]:
    return [p for p in lab.root.rglob("*.certmon-*.tmp") if "backups" not in p.parts]


def _watch(lab: Lab, proc: subprocess.Popen[str]) -> tuple[float | None, str, str]:
    """Run to completion while timing how long its intent journal exists (None: no change made)."""
    seen = gone = None
    while proc.poll() is None:
        exists = _journal(lab).exists()
        if seen is None and exists:
            seen = time.monotonic()
        elif seen is not None and gone is None and not exists:
            gone = time.monotonic()
        time.sleep(0.0002)
    ended = time.monotonic()
    out, err = proc.communicate()
    return (None if seen is None else (gone or ended) - seen), out, err


def _wait_until(proc: subprocess.Popen[str], moment: float) -> None:
    while proc.poll() is None and time.monotonic() < moment:
        time.sleep(0.0002)


def _worker(lab: Lab, seed: int) -> list[Kill]:
    rng = random.Random(seed)
    original = lab.localagent_config.read_bytes()
    # One uninterrupted run: how long a run takes, how long its change takes, the bytes it writes.
    started = time.monotonic()
    window, out, err = _watch(lab, _apply(lab))
    total = time.monotonic() - started
    assert window is not None and json.loads(out)["outcome"] == "applied", err
    windows = [window]
    new = lab.localagent_config.read_bytes()
    kills = []
    for index in range(RUNS_PER_WORKER):
        lab.localagent_config.write_bytes(original)
        proc = _apply(lab)
        started = time.monotonic()
        if index % 3 == 0:
            mode, delay = "anytime", rng.uniform(0.0, total * 1.1)
            _wait_until(proc, started + delay)
        else:
            # The journal lives from just before the backup until the outcome is audited.
            mode, delay = "change", rng.uniform(0.0, sorted(windows)[len(windows) // 2])
            while proc.poll() is None and not _journal(lab).exists():
                time.sleep(0.0001)
            _wait_until(proc, time.monotonic() + delay)
        journal_at_kill = _journal(lab).exists()
        proc.send_signal(signal.SIGKILL)
        proc.communicate()
        left_journal = _journal(lab).exists()
        content = lab.localagent_config.read_bytes()
        state = "old" if content == original else "new" if content == new else "PARTIAL"
        assert state != "PARTIAL", f"run {index} ({mode}, {delay:.4f} s): the file is neither old nor new: {content!r}"

        window, out, err = _watch(lab, _apply(lab))
        assert out, f"re-run after kill {index} failed: {err}"
        result = json.loads(out)
        assert result["outcome"] == ("applied" if state == "old" else "nothing-to-do"), result["message"]
        if window is not None and state == "old" and not left_journal:
            windows.append(window)  # a clean re-run: its journal timing is a fresh sample
        assert lab.localagent_config.read_bytes() == new
        assert not _journal(lab).exists()
        assert _leftovers(lab) == []
        kills.append(Kill(mode, delay, journal_at_kill, state, result["outcome"], result["recovered"] is not None))
    return kills


def _audit_is_consistent(lab: Lab) -> Counter[str]:
    entries = JsonlAuditLog(lab.data_dir / AUDIT_FILE).entries()
    by_run: dict[str, set[str]] = {}
    for entry in entries:
        by_run.setdefault(str(entry["run_id"]), set()).add(str(entry["outcome"]))
    for run_id, outcomes in by_run.items():
        if "started" in outcomes:
            assert outcomes & TERMINAL, f"run {run_id} started and was never recorded as finished or interrupted"
    store = StateStore(lab.data_dir)
    try:
        assert store.integrity_ok()
    finally:
        store.close()
    return Counter(str(e["outcome"]) for e in entries)


@pytest.mark.slow
def test_sigkill_at_random_points_never_leaves_a_partial_file(cli_lab: Lab, tmp_path: Path) -> None:
    labs = [cli_lab]
    for number in range(1, WORKERS):
        root = tmp_path / f"lab{number}"
        shutil.copytree(cli_lab.root, root)
        labs.append(dataclasses.replace(cli_lab, root=root))
    seed = random.SystemRandom().randrange(2**32)
    with ThreadPoolExecutor(WORKERS) as pool:
        results = list(pool.map(_worker, labs, [seed + n for n in range(WORKERS)]))
    kills = [kill for worker in results for kill in worker]
    audit = sum((_audit_is_consistent(lab) for lab in labs), Counter())
    states = Counter((k.mode, k.state) for k in kills)
    in_change = Counter(k.state for k in kills if k.journal_at_kill)
    print(
        f"\nseed {seed}: {len(kills)} kills {dict(states)}; during the change (journal present): "
        f"{dict(in_change)}; audit {dict(audit)}"
    )
    assert len(kills) >= 50
    assert {k.state for k in kills} == {"old", "new"}
    assert in_change.total() >= 5  # typically 15-30; a loaded machine shifts kills later
    assert sum(k.recovered for k in kills) == audit["interrupted"] >= 1


def test_sigterm_during_the_change_rolls_back_or_completes(cli_lab: Lab) -> None:
    """An operator's Ctrl+C or a service stop: rolled back (old bytes) or committed (new), and said so."""
    original = cli_lab.localagent_config.read_bytes()
    window, out, _err = _watch(cli_lab, _apply(cli_lab))
    assert window is not None
    new = cli_lab.localagent_config.read_bytes()
    rng = random.Random()
    outcomes: Counter[str] = Counter()
    runs = 0
    while runs < 10 or (outcomes["rolled-back"] == 0 and runs < 40):
        runs += 1
        cli_lab.localagent_config.write_bytes(original)
        proc = _apply(cli_lab)
        while proc.poll() is None and not _journal(cli_lab).exists():
            time.sleep(0.0001)
        _wait_until(proc, time.monotonic() + rng.uniform(0.0, window * 0.6))
        proc.send_signal(signal.SIGTERM)
        out, err = proc.communicate(timeout=60)
        content = cli_lab.localagent_config.read_bytes()
        assert content in (original, new)
        if proc.returncode == 128 + signal.SIGTERM:
            result = json.loads(out)
            outcomes[result["outcome"]] += 1
            assert result["signal"] == "SIGTERM"
            assert content == (original if result["outcome"] == "rolled-back" else new), result["message"]
            assert not _journal(cli_lab).exists()
        else:
            # The signal came after the guard was gone: the default action ended the process.
            assert proc.returncode in (0, -signal.SIGTERM), err
            outcomes[f"exit {proc.returncode}"] += 1
        assert _leftovers(cli_lab) == []
    print(f"\n{runs} SIGTERMs: {dict(outcomes)}")
    assert outcomes["rolled-back"] >= 1
    entries = JsonlAuditLog(cli_lab.data_dir / AUDIT_FILE).entries()
    rolled_back = [e for e in entries if e["outcome"] == "rolled-back"]
    assert len(rolled_back) == outcomes["rolled-back"]
    assert all(e["detail"]["signal"] == "SIGTERM" for e in rolled_back)  # type: ignore[index]
