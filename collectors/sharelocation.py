"""Which of OrchestratorData's config.json locations the agent share source reads, and why.

`DeploymentInstanceArtifact` can hold several rows for one environment (one per servicing run), and
a row's Location may name the `StandaloneSetup-NNN` folder rather than the file. Every location is
resolved inside the share (a folder means its config.json), locations whose file does not exist are
skipped, and the newest file wins: the latest write time of config.json, then the larger
StandaloneSetup number. Which rows the table has and which one was read is reported with the facts.
The table's own columns beyond DeploymentInstanceId, AssetId and Location are not public, so no
database timestamp is used (UNVERIFIED whether one exists).
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from collectors.agentconfig import AgentConfig
from collectors.errors import CollectorError, Reason
from collectors.model import MetricSpec

_SETUP_NUMBER = re.compile(r"StandaloneSetup-(\d{1,18})", re.I)
MAX_LOCATIONS = 200


@dataclass(frozen=True, slots=True)
class ShareConfig(AgentConfig):
    """The share's config.json facts, with the location read and every location OrchestratorData listed."""

    location: str = ""
    candidates: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class Candidate:
    """One location that resolved to an existing config.json inside the share."""

    location: str
    path: Path
    modified: float
    setup_number: int


def setup_number(location: str) -> int:
    """The NNN of a `StandaloneSetup-NNN` folder in the location, or -1."""
    found = _SETUP_NUMBER.findall(location)
    return int(found[-1]) if found else -1


def choose(
    locations: Sequence[str], resolve: Callable[[str], Path], source: str
) -> tuple[Candidate, tuple[tuple[Reason, str], ...]]:
    """The newest existing config.json among the locations, and (reason, text) for each one skipped."""
    if len(locations) > MAX_LOCATIONS:
        message = f"OrchestratorData lists {len(locations)} config.json locations (limit {MAX_LOCATIONS})"
        raise CollectorError(source, Reason.BAD_OUTPUT, message)
    if len(locations) == 1:
        # One row: read it, and let a missing or refused file fail the collection with its own error.
        return Candidate(locations[0], resolve(locations[0]), 0.0, setup_number(locations[0])), ()
    candidates: list[Candidate] = []
    skipped: list[tuple[Reason, str]] = []
    for location in locations:
        try:
            path = resolve(location)
        except CollectorError as err:
            skipped.append((err.reason, str(err)))
            continue
        try:
            modified = os.stat(path).st_mtime
        except FileNotFoundError:
            skipped.append((Reason.NOT_FOUND, f"{location}: no config.json at {path}"))
            continue
        except OSError as err:
            skipped.append((Reason.NOT_FOUND, f"{location}: {path}: {err.strerror or err}"))
            continue
        candidates.append(Candidate(location, path, modified, setup_number(location)))
    if not candidates:
        detail = "; ".join(text for _reason, text in skipped)
        reasons = {reason for reason, _text in skipped}
        reason = reasons.pop() if len(reasons) == 1 else Reason.NOT_FOUND
        raise CollectorError(source, reason, f"no config.json at any OrchestratorData location: {detail}")
    newest = max(candidates, key=lambda c: (c.modified, c.setup_number, c.location))
    return newest, tuple(skipped)


def _location_samples(facts: object, target: str) -> list[tuple[tuple[str, ...], float]]:
    if not isinstance(facts, ShareConfig) or not facts.location:
        return []
    return [((facts.location, facts.path), float(len(facts.candidates)))]


SHARE_METRICS = (
    MetricSpec(
        "certmon_agentshare_config_json_rows",
        "How many config.json locations OrchestratorData lists for the environment; `location` is the one read "
        "(the newest existing file) and `path` where it is on this machine.",
        ("location", "path"),
        _location_samples,
    ),
)
