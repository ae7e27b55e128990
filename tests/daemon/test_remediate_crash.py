"""SIGKILL `certmon remediate localagent-config-update --apply` at random points, many times.

After every kill the file must hold exactly the old or exactly the new bytes, and a re-run
must complete. A third of the kills land at a uniformly random step of the whole run
(start-up, collection, planning, the change, the re-collection, shut-down); the rest land at
a random step while the intent journal exists, where the backup, the temporary file, the rename,
the verification and the audit happen. Kill points are steps the process counts (its I/O events
and calls that write or exchange bytes, `tests.reliability.killpoints`), calibrated by an
uninterrupted run, so a busy machine does not move them. No hook in the product: the test runs
the command line under `tests.reliability.killrun`.
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
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import pytest

from daemon.state import StateStore
from remediations.audit import AUDIT_FILE, JsonlAuditLog
from simulator.lab import Lab
from tests.reliability.killpoints import Calibration

ROOT = Path(__file__).resolve().parents[2]
NAME = "localagent-config-update"
RUNS_PER_WORKER = 27
WORKERS = 2
TERMINAL = {"applied", "failed", "rolled-back", "interrupted"}


@dataclass(frozen=True)
class Kill:
    """One killed run: where it was killed, what the file held afterwards, what the re-run did."""

    mode: str
    step: int
    journal_at_kill: bool
    state: str
    rerun: str
    recovered: bool


def _env(**killpoint: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("CERTMON_", "KILLPOINT_"))}
    env["PYTHONPATH"] = str(ROOT)
    env.update({f"KILLPOINT_{name.upper()}": value for name, value in killpoint.items()})
    return env


def _apply(lab: Lab, **killpoint: str) -> subprocess.Popen[str]:
    command = ["remediate", NAME, "--apply", "--format", "json"]
    return subprocess.Popen(
        [sys.executable, "-m", "tests.reliability.killrun", "-c", str(lab.config_file), *command],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=_env(**killpoint),
        cwd=ROOT,
    )


def _journal(lab: Lab) -> Path:
    return lab.data_dir / "remediations" / "demo.journal.json"


def _leftovers(lab: Lab) -> list[Path]:
    return [p for p in lab.root.rglob("*.certmon-*.tmp") if "backups" not in p.parts]


def _calibrate(lab: Lab) -> tuple[Calibration, str, str]:
    """An uninterrupted run: its steps (from start-up), where its journal lived, and its output."""
    report = lab.root / "killpoint-report.json"
    report.unlink(missing_ok=True)
    proc = _apply(lab, report=str(report))
    out, err = proc.communicate(timeout=300)
    return Calibration(**json.loads(report.read_text(encoding="utf-8"))), out, err


def _worker(lab: Lab, seed: int) -> list[Kill]:
    rng = random.Random(seed)
    original = lab.localagent_config.read_bytes()
    calibration, out, err = _calibrate(lab)
    assert calibration.journal_from is not None and json.loads(out)["outcome"] == "applied", err
    new = lab.localagent_config.read_bytes()
    kills = []
    for index in range(RUNS_PER_WORKER):
        lab.localagent_config.write_bytes(original)
        # A third over the whole run (`draw` with an odd index), the rest while the journal exists.
        mode = "anytime" if index % 3 == 0 else "change"
        step = calibration.draw("whole" if mode == "anytime" else "journal", rng)
        proc = _apply(lab, step=str(step))
        proc.communicate(timeout=300)
        journal_at_kill = _journal(lab).exists()
        left_journal = journal_at_kill
        content = lab.localagent_config.read_bytes()
        state = "old" if content == original else "new" if content == new else "PARTIAL"
        assert state != "PARTIAL", f"run {index} ({mode}, step {step}): the file is neither old nor new: {content!r}"

        rerun = _apply(lab)
        out, err = rerun.communicate(timeout=300)
        assert out, f"re-run after kill {index} failed: {err}"
        result = json.loads(out)
        assert result["outcome"] == ("applied" if state == "old" else "nothing-to-do"), result["message"]
        assert lab.localagent_config.read_bytes() == new
        assert not _journal(lab).exists()
        assert _leftovers(lab) == []
        kills.append(Kill(mode, step, journal_at_kill, state, result["outcome"], result["recovered"] is not None))
        assert (result["recovered"] is not None) == left_journal, f"run {index} ({mode}, step {step})"
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
    assert in_change.total() >= 5  # steps, not delays: a loaded machine does not shift them
    assert sum(k.recovered for k in kills) == audit["interrupted"] >= 1


def test_sigterm_during_the_change_rolls_back_or_completes(cli_lab: Lab) -> None:
    """An operator's Ctrl+C or a service stop: rolled back (old bytes) or committed (new), and said so."""
    original = cli_lab.localagent_config.read_bytes()
    calibration, out, _err = _calibrate(cli_lab)
    assert calibration.journal_from is not None and calibration.journal_to is not None, out
    new = cli_lab.localagent_config.read_bytes()
    rng = random.Random()
    outcomes: Counter[str] = Counter()
    runs = 0
    while runs < 10 or (outcomes["rolled-back"] == 0 and runs < 40):
        runs += 1
        cli_lab.localagent_config.write_bytes(original)
        # The process sends itself SIGTERM at a step of the change's first 60 %, as a service stop would.
        window = calibration.journal_to - calibration.journal_from
        step = calibration.journal_from + rng.randrange(0, max(1, int(window * 0.6)))
        proc = _apply(cli_lab, step=str(step), signal="TERM")
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
