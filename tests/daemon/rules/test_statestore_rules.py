"""state-store-failing: the store cannot be written; a working store next to it raises nothing."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

from collectors.model import Snapshot
from daemon.evaluator import evaluate
from daemon.history import StoreHistory
from daemon.settings import Settings
from daemon.state import DB_FILE, StateStore


def test_a_store_that_cannot_open_raises_the_finding_a_working_one_does_not(
    lab_settings: Settings, tmp_path: Path, now: datetime
) -> None:
    empty = Snapshot("lab", now, {})
    working = StateStore(tmp_path / "ok")
    healthy = evaluate(empty, StoreHistory(working, {}), now, lab_settings)
    assert "state-store-failing" not in {f.rule for f in healthy.findings}
    working.close()

    # The database path is a folder: SQLite cannot open it, whatever the user's privileges.
    (tmp_path / "broken" / DB_FILE).mkdir(parents=True)
    broken = StateStore(tmp_path / "broken")
    failing = evaluate(empty, StoreHistory(broken, {}), now, lab_settings)
    (finding,) = [f for f in failing.findings if f.rule == "state-store-failing"]
    assert finding.severity == "warning" and "collection continues in memory" in finding.message
    assert str(tmp_path / "broken" / DB_FILE) in finding.message
    broken.close()
