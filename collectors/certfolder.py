"""A certificate folder per node: exported PEM/DER/PFX files standing in for a node's stores."""

from __future__ import annotations

import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from collectors.base import Collector, Deadline
from collectors.certfiles import load_certificate_file
from collectors.errors import CertificateError, CollectorError, Reason, file_error
from collectors.model import DEFAULT_STORE, CertObservation, Observation, Problem

CERTIFICATE_SUFFIXES = frozenset({".pfx", ".p12", ".cer", ".crt", ".pem", ".der", ".p7b", ".p7c"})


def store_label(folder: str) -> str:
    """Folder name to store label: `Root` becomes `LocalMachine\\Root`."""
    return folder if "\\" in folder else f"LocalMachine\\{folder}"


class CertFolderCollector(Collector):
    """`<root>/<node>/` holds the node's `My` store; `<root>/<node>/<Store>/` any other store."""

    name = "certfolder"

    def __init__(
        self,
        root: Path,
        password: bytes | None = None,
        nodes: Sequence[str] = (),
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.root = root
        self._password = password
        self.nodes = tuple(nodes)

    def targets(self) -> Sequence[str]:
        """Configured nodes, or every sub-folder of the root."""
        if self.nodes:
            return self.nodes
        try:
            # Interned names stay the same objects from cycle to cycle (the runner keeps them), so
            # `root / target` finds them in the interned-string table instead of adding new ones.
            return tuple(sorted(sys.intern(p.name) for p in self.root.iterdir() if p.is_dir()))
        except OSError:
            # An unreadable root shows up as one failing target rather than none at all.
            return (self.root.name or str(self.root),)

    def collect(self, target: str, deadline: Deadline) -> Observation:
        """Parse every certificate file of one node folder."""
        folder = self.root / target
        if not folder.is_dir():
            raise CollectorError(str(folder), Reason.NOT_FOUND, "node folder not found")
        found: list[CertObservation] = []
        problems: list[Problem] = []
        try:
            entries = sorted(folder.iterdir())
        except OSError as err:
            raise file_error(str(folder), err) from err
        for entry in entries:
            deadline.check(str(folder))
            if entry.is_dir():
                files = sorted(p for p in entry.iterdir() if p.is_file())
                store = store_label(entry.name)
            else:
                files, store = [entry], DEFAULT_STORE
            for path in files:
                if path.suffix.lower() not in CERTIFICATE_SUFFIXES:
                    continue
                try:
                    loaded = load_certificate_file(path, self._password)
                except CertificateError as err:
                    problems.append(Problem(err.reason, str(err)))
                    continue
                found.extend(
                    CertObservation(
                        certificate=item.certificate,
                        source=self.name,
                        node=target,
                        store=store,
                        has_private_key=item.has_private_key,
                        location=str(path),
                    )
                    for item in loaded
                )
        return Observation(certificates=merge_duplicates(found), problems=tuple(problems))


def merge_duplicates(found: Sequence[CertObservation]) -> tuple[CertObservation, ...]:
    """One observation per (store, thumbprint); the private key counts if any copy has it."""
    merged: dict[tuple[str, str], CertObservation] = {}
    for item in found:
        key = (item.store, item.thumbprint)
        seen = merged.get(key)
        if seen is None or (item.has_private_key and not seen.has_private_key):
            merged[key] = item
    return tuple(merged.values())
