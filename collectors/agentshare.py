"""The agent share: its config.json (path from OrchestratorData), kept inside the configured share.

OrchestratorData's `DeploymentInstanceArtifact` says where config.json is, as a UNC path
(`\\\\fileserver\\agent\\wp\\<environment>\\StandaloneSetup-123456\\config.json`). certmon maps
that path onto the share as this machine reaches it (a UNC path on Windows, a mount point on
Linux) and refuses anything that does not resolve inside it: a database row must never point
certmon, which may later rewrite the file, at another place.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from collectors.agentconfig import agent_references, load_agent_config
from collectors.base import Collector, Deadline
from collectors.errors import CollectorError, Reason
from collectors.model import Observation, Problem
from collectors.sharelocation import SHARE_METRICS, ShareConfig, choose

SOURCE = "agentshare"
CONFIG_JSON = "config.json"
# Characters Windows forbids in a path component; ':' would also name an alternate data stream.
_FORBIDDEN = re.compile(r'[<>:"|?*\x00-\x1f]')


class OutsideShareError(CollectorError):
    """A location that does not resolve to a file inside the agent share."""


def _unc_text(text: str) -> str:
    return text.strip().replace("/", "\\").rstrip("\\")


@dataclass(frozen=True)
class AgentShare:
    """The agent share as this machine reaches it (`root`) and as the database writes it (`unc`)."""

    root: Path
    unc: str = ""

    @property
    def unc_prefix(self) -> str:
        """The UNC form of the share: configured, or the root itself when it is a UNC path."""
        if self.unc:
            return _unc_text(self.unc)
        text = str(self.root)
        return _unc_text(text) if text.startswith(("\\\\", "//")) else ""

    def _relative_parts(self, location: str) -> list[str]:
        text = location.strip()
        prefix = self.unc_prefix
        normalised = _unc_text(text)
        if prefix and normalised.lower().startswith(prefix.lower() + "\\"):
            return normalised[len(prefix) + 1 :].split("\\")
        local = Path(text)
        if local.is_absolute():
            try:
                return list(local.relative_to(self.root).parts)
            except ValueError:
                pass
        raise OutsideShareError(
            location, Reason.CONFIG_ERROR, f"refused: not inside the agent share {prefix or self.root}"
        )

    def resolve(self, location: str, file_name: str = CONFIG_JSON, *, folder: bool = False) -> Path:
        """The local path of a share location; OutsideShareError unless it is `file_name` inside the share.

        With `folder`, a location naming a folder (OrchestratorData may store the StandaloneSetup-NNN
        folder) means the `file_name` in it.
        """
        if not location.strip():
            raise OutsideShareError("(empty)", Reason.CONFIG_ERROR, "refused: empty location")
        parts = self._relative_parts(location)
        for part in parts:
            if part in ("", ".", "..") or _FORBIDDEN.search(part) or part != part.rstrip(". "):
                raise OutsideShareError(location, Reason.CONFIG_ERROR, f"refused: path component {part!r}")
        if folder and parts[-1].lower() != file_name.lower():
            parts.append(file_name)
        if parts[-1].lower() != file_name.lower():
            raise OutsideShareError(location, Reason.CONFIG_ERROR, f"refused: expected a file named {file_name}")
        candidate = self.root.joinpath(*parts)
        real_root = os.path.realpath(self.root)
        real = os.path.realpath(candidate)
        # A link inside the share must not lead out of it either.
        if os.path.commonpath([real_root, real]) != real_root:
            raise OutsideShareError(location, Reason.CONFIG_ERROR, "refused: resolves outside the agent share")
        return Path(real)


Locator = Callable[[Deadline], Sequence[str]]


class AgentShareCollector(Collector):
    """config.json on the agent share, found through OrchestratorData or configured directly."""

    name = SOURCE
    metrics = SHARE_METRICS

    def __init__(
        self,
        share: AgentShare,
        *,
        locate: Locator | None = None,
        config_json: str = "",
        environment_id: str = "",
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.share = share
        self.locate = locate
        self.config_json = config_json
        self.environment_id = environment_id

    def targets(self) -> Sequence[str]:
        """One target: the deployment configuration."""
        return (CONFIG_JSON,)

    def locations(self, deadline: Deadline) -> tuple[str, ...]:
        """Where config.json is: the configured location, else what OrchestratorData says."""
        if self.config_json:
            return (self.config_json,)
        if self.locate is None:
            raise CollectorError(
                SOURCE, Reason.CONFIG_ERROR, "neither sources.agentshare.config_json nor OrchestratorData is configured"
            )
        found = tuple(self.locate(deadline))
        if not found:
            raise CollectorError(
                SOURCE,
                Reason.NOT_FOUND,
                f"OrchestratorData has no config.json artifact for environment {self.environment_id or '(unset)'}",
            )
        return found

    def collect(self, target: str, deadline: Deadline) -> Observation:
        """Resolve the location inside the share and read the file: AgentConfig facts, like localagent-config.json.

        Several OrchestratorData rows (one per servicing run), or a row naming the StandaloneSetup
        folder: the newest existing config.json is read, and the facts say which (sharelocation.py).
        """
        locations = self.locations(deadline)
        chosen, skipped = choose(locations, lambda loc: self.share.resolve(loc, folder=True), SOURCE)
        config = load_agent_config(chosen.path)
        facts = ShareConfig(
            config.path,
            config.connection_endpoint,
            config.cluster_id,
            config.server_thumbprint,
            config.client_thumbprint,
            location=chosen.location,
            candidates=locations,
        )
        problems = tuple(Problem(reason, f"{SOURCE}: skipped {text}") for reason, text in skipped)
        return Observation(references=agent_references(config, SOURCE, CONFIG_JSON), facts=facts, problems=problems)
