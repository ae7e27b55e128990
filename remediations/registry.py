"""Where remediations are registered: one line per remediation."""

from __future__ import annotations

from remediations.base import Remediation, RemediationError
from remediations.credentialsrotate import CredentialsJsonRotate
from remediations.deploymentconfig import DeploymentConfigUpdate
from remediations.localagent import LocalAgentConfigUpdate
from remediations.reencryption import EnableReencryption
from remediations.servicefabric import CleanupOldCerts, ReplicaCheckTimeout, StageRotation

REMEDIATIONS: dict[str, type[Remediation]] = {
    LocalAgentConfigUpdate.name: LocalAgentConfigUpdate,
    StageRotation.name: StageRotation,
    CleanupOldCerts.name: CleanupOldCerts,
    ReplicaCheckTimeout.name: ReplicaCheckTimeout,
    EnableReencryption.name: EnableReencryption,
    DeploymentConfigUpdate.name: DeploymentConfigUpdate,
    CredentialsJsonRotate.name: CredentialsJsonRotate,
}


class UnknownRemediation(RemediationError):
    """No remediation has this name."""


def all_remediations() -> list[Remediation]:
    """One instance of every registered remediation, in registration order."""
    return [kind() for kind in REMEDIATIONS.values()]


def get_remediation(name: str) -> Remediation:
    """The remediation with this name; the error lists the known names."""
    kind = REMEDIATIONS.get(name)
    if kind is None:
        raise UnknownRemediation(f"unknown remediation {name!r}; known: {', '.join(REMEDIATIONS)}")
    return kind()
