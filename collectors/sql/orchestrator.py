"""OrchestratorData: where the agent share's config.json of this environment is (DeploymentInstanceArtifact)."""

from __future__ import annotations

from dataclasses import dataclass

from collectors.base import Deadline
from collectors.sql import queries as q
from collectors.sql.connection import Database, DatabaseSpec, connect
from collectors.sql.values import as_text


@dataclass(frozen=True, slots=True)
class OrchestratorFacts:
    """The deployment artifacts certmon looks up for the configured LCS environment."""

    environment_id: str
    config_json_locations: tuple[str, ...]


def read_config_json_locations(db: Database, environment_id: str) -> tuple[str, ...]:
    """Every distinct Location of config.json for the environment, in the order the database returns them."""
    rows = db.query(q.CONFIG_JSON_LOCATIONS, (q.CONFIG_JSON_ASSET, environment_id))
    return tuple(dict.fromkeys(as_text(location).strip() for (location,) in rows if as_text(location).strip()))


def config_json_locations(spec: DatabaseSpec, environment_id: str, deadline: Deadline) -> tuple[str, ...]:
    """Connect to OrchestratorData and look the locations up (what the agent share source needs)."""
    with connect(spec, deadline) as db:
        return read_config_json_locations(db, environment_id)
