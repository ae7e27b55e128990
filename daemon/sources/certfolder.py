"""The `certfolder` source: folders of exported certificate files, one per node."""

from __future__ import annotations

from pathlib import Path

from pydantic import Field, SecretStr

from collectors.base import Collector
from collectors.certfolder import CertFolderCollector
from daemon.sources.base import Paths, SourceSettings, secret_bytes


class CertFolderSource(SourceSettings):
    """Folders of exported certificate files, one per node."""

    path: Path | None = None
    nodes: list[str] = Field(default_factory=list)
    password: SecretStr | None = None
    password_file: Path | None = None

    def password_bytes(self) -> bytes | None:
        """The PFX password from the environment or its file."""
        return secret_bytes(self.password, self.password_file)


def collector(section: CertFolderSource) -> Collector | None:
    """The collector, when the folder is configured."""
    if not section.enabled or section.path is None:
        return None
    return CertFolderCollector(section.path, section.password_bytes(), section.nodes, **section.timing())


def paths(section: CertFolderSource) -> Paths:
    """The folder this source reads."""
    return [("sources.certfolder.path", section.path)]
