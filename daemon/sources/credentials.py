"""The `credentials` source: Credentials.json (configured, or in the agent share), and where it is rotated."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal

from pydantic import Field, model_validator

from collectors.base import Collector, Deadline
from collectors.credentials import CredentialsCollector
from collectors.winrm import WinRMCollector
from collectors.winrm.command import ApprovedCommand, CommandOutcome, check_windows_path
from collectors.winrm.nodefiles import NodeFiles
from daemon.sources.agentshare import AgentShareSource
from daemon.sources.base import Paths, SourceSettings, Strict
from remediations.credentialscopy import NODE_FILES_OPTION
from remediations.credentialsrotate import CREDENTIALS_PATH_OPTION, REMOTE_OPTION, ROTATE_OPTION, RotateTarget

CREDENTIALS_RELATIVE = ("Credentials", "Credentials.json")


class CredentialsRotateSettings(Strict):
    """Where credentials-json-rotate runs Configure-CredentialsJson.ps1 (an AOS node, over WinRM)."""

    node: str = ""
    script: str = "C:\\D365\\Infrastructure\\Configure-CredentialsJson.ps1"
    configuration_file: str = "C:\\D365\\Infrastructure\\ConfigTemplate.xml"
    timeout_seconds: float = Field(600.0, gt=0)
    #: the script reaches Credentials.json on the agent share: a WinRM second hop (docs/credentials-rotate.md)
    second_hop: Literal["refuse", "delegation", "credssp", "copy"] = "refuse"
    #: copy: the Infrastructure folder on this machine (default: sources.configtemplate.infrastructure)
    scripts_folder: Path | None = None

    @model_validator(mode="after")
    def _paths(self) -> CredentialsRotateSettings:
        check_windows_path(self.script, ".ps1")
        check_windows_path(self.configuration_file, ".xml")
        return self


class CredentialsSource(SourceSettings):
    """Credentials.json: which certificate each value is encrypted to."""

    #: default: Credentials/Credentials.json under sources.agentshare.path
    path: Path | None = None
    rotate: CredentialsRotateSettings = Field(default_factory=CredentialsRotateSettings)


def credentials_path(section: CredentialsSource, agentshare: AgentShareSource) -> Path | None:
    """Credentials.json: configured, or in the agent share."""
    if section.path is not None:
        return section.path
    share = agentshare.path
    return share.joinpath(*CREDENTIALS_RELATIVE) if share is not None else None


def collector(section: CredentialsSource, agentshare: AgentShareSource) -> Collector | None:
    """The collector, when Credentials.json can be located."""
    path = credentials_path(section, agentshare)
    if not section.enabled or path is None:
        return None
    return CredentialsCollector(path, timeout=section.timeout_seconds, interval=section.interval_seconds)


def paths(section: CredentialsSource, agentshare: AgentShareSource) -> Paths:
    """The file this source reads."""
    return [("sources.credentials.path", credentials_path(section, agentshare))]


def remediation_options(
    section: CredentialsSource,
    agentshare: AgentShareSource,
    collectors: Mapping[str, Collector],
    infrastructure: Path | None = None,
) -> dict[str, Any]:
    """Credentials.json, where to rotate it, and a way to run approved commands on the node (the winrm source)."""
    rotate = section.rotate
    winrm = collectors.get("winrm")
    transport = winrm.options.transport if isinstance(winrm, WinRMCollector) else ""
    options: dict[str, Any] = {
        CREDENTIALS_PATH_OPTION: credentials_path(section, agentshare),
        ROTATE_OPTION: RotateTarget(
            rotate.node,
            rotate.script,
            rotate.configuration_file,
            rotate.timeout_seconds,
            rotate.second_hop,
            transport,
            rotate.scripts_folder or infrastructure,
        ),
    }
    if isinstance(winrm, WinRMCollector):

        def run(node: str, command: ApprovedCommand, deadline: Deadline) -> CommandOutcome:
            return winrm.run_approved(node, command, deadline)

        def node_files(node: str) -> NodeFiles:
            # A session of its own, like approved commands: the inventory's session stays untouched.
            return NodeFiles(winrm.command_session(node))

        options[REMOTE_OPTION] = run
        options[NODE_FILES_OPTION] = node_files
    return options
