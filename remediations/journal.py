"""The intent journal: what an apply is about to change, kept until its outcome is audited.

Written (atomically) under the environment lock before the first side effect and removed
after the final audit record. A journal found by the next apply means a process died in
between (SIGKILL, power loss): the next run records what it finds, each target's content
being the planned before, the planned after, or something else, as an `interrupted` audit
record, and then proceeds normally. Atomic writes guarantee "before" or "after"; "other"
means someone changed the file since.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from collectors.errors import CertmonError
from collectors.files import read_bytes
from remediations.files import TEMP_MARK, TEMP_SUFFIX, atomic_write, remove_stale_temp_files, sha256


class Journal:
    """One environment's journal file under the data directory."""

    def __init__(self, data_dir: Path, environment: str) -> None:
        self.path = data_dir / "remediations" / f"{environment}.journal.json"

    def begin(self, entry: dict[str, Any]) -> None:
        """Record the intent before any side effect."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        remove_stale_temp_files(self.path)
        atomic_write(self.path, json.dumps(entry, sort_keys=True, indent=2).encode(), private=True)

    def finish(self) -> None:
        """The run's outcome is audited: forget the intent."""
        self.path.unlink(missing_ok=True)

    def pending(self) -> dict[str, Any] | None:
        """The intent of a run that never finished, or None."""
        try:
            data = json.loads(self.path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            return None
        except (OSError, ValueError) as err:
            return {"corrupt": f"{type(err).__name__}: {err}"}
        return data if isinstance(data, dict) else {"corrupt": "not a JSON object"}


def remove_backup_leftovers(entry: dict[str, Any]) -> None:
    """Temporary files of a backup that a killed run was writing."""
    folder = Path(str(entry.get("backup_dir") or ""))
    if not folder.name or not folder.is_dir():
        return
    for leftover in folder.glob(f".*{TEMP_MARK}*{TEMP_SUFFIX}"):
        leftover.unlink(missing_ok=True)


def file_states(entry: dict[str, Any]) -> dict[str, str]:
    """For each file of a journal entry: "before", "after", "other" or "missing"."""
    states = {}
    for item in entry.get("files", []):
        path = str(item.get("path", ""))
        try:
            digest = sha256(read_bytes(path))
        except CertmonError:
            states[path] = "missing"
            continue
        if digest == item.get("after_sha256"):
            states[path] = "after"
        elif digest == item.get("before_sha256"):
            states[path] = "before"
        else:
            states[path] = "other"
    return states
