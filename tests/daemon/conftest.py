"""CLI fixtures: a lab copy whose inventory is small enough for many `certmon` processes."""

from __future__ import annotations

import shutil

import pytest
import yaml

from simulator.lab import Lab

# ORCH1's new Service Fabric server and client certificates: all the remediation needs.
INVENTORY = ("ServiceFabric-new.pfx", "ServiceFabricClient-new.pfx")


@pytest.fixture
def cli_lab(lab_copy: Lab) -> Lab:
    """A lab copy whose certificate folder holds only ORCH1's new cluster certificates.

    The lab has no Service Fabric gateway source: the LocalAgent update the CLI tests drive runs
    with the operator's configured override (rules.agent_updates_without_cluster_evidence); the
    gate itself is tested in tests/remediations/test_sf_gates.py.
    """
    folder = lab_copy.root / "certs-small" / "ORCH1"
    folder.mkdir(parents=True)
    for name in INVENTORY:
        shutil.copy(lab_copy.certs_dir / "ORCH1" / name, folder / name)
    config = yaml.safe_load(lab_copy.config_file.read_text(encoding="utf-8"))
    config["sources"]["certfolder"]["path"] = "certs-small"
    config.setdefault("rules", {})["agent_updates_without_cluster_evidence"] = True
    lab_copy.config_file.write_text(yaml.safe_dump(config, sort_keys=False), encoding="utf-8")
    return lab_copy
