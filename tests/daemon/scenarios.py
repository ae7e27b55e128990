"""Scenarios: a private copy of the lab, edited the way an operator would, collected for real by the Daemon."""

from __future__ import annotations

import dataclasses
import json
import shutil
from collections.abc import Callable, Iterable, Sequence
from datetime import datetime
from pathlib import Path
from typing import Any
from xml.etree import ElementTree as ET

from collectors.base import Collector, Deadline
from collectors.certfolder import CertFolderCollector
from collectors.model import CertObservation, Finding, Observation
from daemon.app import Daemon
from daemon.evaluator import Evaluation
from daemon.settings import Settings, load_settings
from daemon.sources.registry import build_collectors
from simulator.lab import Lab


class StaticCollector(Collector):
    """A source that returns what the test hands it: stands in for a source whose collector lands later."""

    name = "static"

    def __init__(self, observations: dict[str, Observation]) -> None:
        super().__init__(timeout=10)
        self.observations = observations

    def targets(self) -> Sequence[str]:
        """The targets the test defined."""
        return tuple(self.observations)

    def collect(self, target: str, deadline: Deadline) -> Observation:
        """The prepared observation."""
        return self.observations[target]


def static_source(name: str, observations: dict[str, Observation]) -> Collector:
    """A StaticCollector registered under a source name (winrm, shareconfig...)."""
    kind = type(f"Static_{name}", (StaticCollector,), {"name": name})
    collector: Collector = kind(observations)
    return collector


class Scenario:
    """One lab copy, its edits, and collections through the Daemon (sharing the lab's state store)."""

    def __init__(self, lab: Lab, now: datetime) -> None:
        self.lab = lab
        self.now = now

    def settings(self, edit: Callable[[Settings], None] | None = None, **update: Any) -> Settings:
        """The lab's settings, optionally changed."""
        settings = load_settings(self.lab.config_file).model_copy(update=update, deep=True)
        if edit is not None:
            edit(settings)
        return settings

    def collect(
        self,
        *,
        at: datetime | None = None,
        extra: Iterable[Collector] = (),
        edit: Callable[[Settings], None] | None = None,
        **update: Any,
    ) -> Evaluation:
        """Start a daemon on the lab, collect every source once, stop it: one evaluation."""
        settings = self.settings(edit, **update)
        moment = at or self.now
        daemon = Daemon(settings, collectors=[*build_collectors(settings), *extra], clock=lambda: moment)
        try:
            return daemon.collect_once().evaluation
        finally:
            daemon.stop()

    # -- edits ---------------------------------------------------------------------------

    def pfx(self, node: str, role: str, generation: str) -> Path:
        """Path of a certificate export in a node folder."""
        return self.lab.certs_dir / node / f"{self.lab.cert(role, generation).file_stem}.pfx"

    def remove(self, node: str, role: str, generation: str) -> None:
        """Delete a certificate from a node."""
        self.pfx(node, role, generation).unlink()

    def install(self, node: str, role: str, generation: str) -> None:
        """Copy a certificate export onto a node (from any node that has it)."""
        stem = self.lab.cert(role, generation).file_stem
        source = next(self.lab.certs_dir.glob(f"*/{stem}.pfx"))
        shutil.copy(source, self.lab.certs_dir / node / source.name)

    def observations(self, node: str) -> list[CertObservation]:
        """What a node-store source reports for a node: the certfolder collection, relabelled as WinRM's."""
        folder = CertFolderCollector(self.lab.certs_dir, self.lab.password.encode())
        found = folder.collect(node, Deadline.after(60)).certificates
        return [dataclasses.replace(obs, source="winrm") for obs in found]

    def edit_json(self, path: Path, change: Callable[[Any], None]) -> None:
        """Load, change and rewrite a JSON configuration."""
        document = json.loads(path.read_text(encoding="utf-8-sig"))
        change(document)
        path.write_text(json.dumps(document, indent=4), encoding="utf-8")

    def edit_template(self, folder: Path, change: Callable[[ET.Element], None]) -> None:
        """Load, change and rewrite a ConfigTemplate.xml."""
        path = folder / "ConfigTemplate.xml"
        tree = ET.parse(path)
        change(tree.getroot())
        tree.write(path, encoding="utf-8", xml_declaration=True)

    def set_template_thumbprint(self, folder: Path, role: str, thumbprint: str) -> None:
        """Write a role's Thumbprint element in a ConfigTemplate.xml."""

        def change(root: ET.Element) -> None:
            for cert in root.iter("Certificate"):
                if cert.get("type") == role:
                    element = cert.find("Thumbprint")
                    assert element is not None
                    element.text = thumbprint

        self.edit_template(folder, change)

    def localagent_to(self, generation: str) -> None:
        """Point localagent-config.json at one generation's Service Fabric certificates."""

        def change(document: Any) -> None:
            settings = document["serviceFabric"]["certificateSettings"]
            settings["serverCertThumbprint"] = self.lab.cert("ServiceFabric", generation).thumbprint
            settings["clientCertThumbprint"] = self.lab.cert("ServiceFabricClient", generation).thumbprint

        self.edit_json(self.lab.localagent_config, change)

    def share_config_to(self, generation: str) -> None:
        """Point the agent share's config.json at one generation's Service Fabric certificates."""

        def change(document: Any) -> None:
            settings = document["serviceFabric"]["certificateSettings"]
            settings["serverCertThumbprint"] = self.lab.cert("ServiceFabric", generation).thumbprint
            settings["clientCertThumbprint"] = self.lab.cert("ServiceFabricClient", generation).thumbprint

        self.edit_json(self.lab.share_config, change)

    def reencrypt_all(self) -> None:
        """What the finished re-encryption job leaves: every probed field under the new DataEncryption certificate."""
        from simulator.axdb import AxdbWriter, open_sqlite
        from simulator.labdata import ENCRYPTED_FIELDS

        connection = open_sqlite(self.lab.axdb_file)
        try:
            old, new = (self.lab.cert("DataEncryption", g).thumbprint for g in ("old", "new"))
            AxdbWriter(connection, "sqlite").reencrypt(old, new, ENCRYPTED_FIELDS)
            connection.commit()
        finally:
            connection.close()

    def clean_cluster(self) -> None:
        """The cluster configuration after sf-cleanup: no secondaries, only the new client."""
        new_client = self.lab.cert("ServiceFabricClient", "new").thumbprint

        def change(document: Any) -> None:
            info = document["properties"]["security"]["CertificateInformation"]
            for key in ("ClusterCertificate", "ServerCertificate", "ReverseProxyCertificate"):
                info[key].pop("ThumbprintSecondary", None)
            info["ClientCertificateThumbprints"] = [{"CertificateThumbprint": new_client, "IsAdmin": True}]

        self.edit_json(self.lab.cluster_config, change)


def findings(evaluation: Evaluation, rule: str) -> list[Finding]:
    """The findings of one rule."""
    return [f for f in evaluation.findings if f.rule == rule]
