"""What the SQL, agent share and Credentials.json remediations need from the configuration (ctx.options)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from collectors.base import Deadline
from collectors.winrm import WinRMCollector
from collectors.winrm.command import ApprovedCommand, CommandOutcome
from daemon.sqlsources import agent_share, credentials_path, database_specs
from remediations.credentialsrotate import CREDENTIALS_PATH_OPTION, REMOTE_OPTION, ROTATE_OPTION, RotateTarget
from remediations.deploymentconfig import AGENT_SHARE_OPTION
from remediations.reencryption import DATABASES_OPTION

if TYPE_CHECKING:
    from daemon.app import Daemon


def sql_remediation_options(daemon: Daemon) -> dict[str, Any]:
    """Databases, the agent share, Credentials.json, where to rotate it, and a way to run approved commands."""
    settings = daemon.settings
    rotate = settings.sources.credentials.rotate
    options: dict[str, Any] = {
        DATABASES_OPTION: database_specs(settings),
        AGENT_SHARE_OPTION: agent_share(settings),
        CREDENTIALS_PATH_OPTION: credentials_path(settings),
        ROTATE_OPTION: RotateTarget(
            rotate.node, rotate.script, rotate.configuration_file, rotate.timeout_seconds, rotate.second_hop
        ),
    }
    winrm = daemon.collectors.get("winrm")
    if isinstance(winrm, WinRMCollector):

        def run(node: str, command: ApprovedCommand, deadline: Deadline) -> CommandOutcome:
            return winrm.run_approved(node, command, deadline)

        options[REMOTE_OPTION] = run
    return options
