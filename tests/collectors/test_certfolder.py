"""The certificate-folder store: one folder per node, stores as sub-folders, bad files as problems."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from collectors.base import Deadline
from collectors.certfolder import CertFolderCollector
from collectors.errors import CollectorError, Reason
from simulator.lab import Lab


def test_node_folders_are_targets_and_stores(lab: Lab) -> None:
    collector = CertFolderCollector(lab.certs_dir, lab.password.encode())
    assert collector.targets() == ("AOS1", "AOS2", "AOS3", "BI1", "MR1", "ORCH1", "ORCH2", "ORCH3", "SQL1")
    observation = collector.collect("AOS1", Deadline.after(10))
    by_store = {(o.store, o.thumbprint): o for o in observation.certificates}
    new_de = lab.cert("DataEncryption", "new").thumbprint
    assert by_store[("LocalMachine\\My", new_de)].has_private_key is True
    assert by_store[("LocalMachine\\Root", lab.ca.thumbprint)].has_private_key is False
    assert {o.node for o in observation.certificates} == {"AOS1"}
    assert observation.problems == ()


def test_bad_files_become_problems_and_duplicates_merge(lab: Lab, tmp_path: Path) -> None:
    node = lab.certs_dir / "AOS1"
    (node / "notes.pem").write_text("-----BEGIN CERTIFICATE-----\nnope\n-----END CERTIFICATE-----\n")
    (node / "README.txt").write_text("ignored: not a certificate file name")
    shutil.copy(node / "Root" / "lab-root-ca.cer", node / "Root" / "copy-of-root.crt")
    (node / "Root" / "root-with-key.pfx").write_bytes((node / "DataEncryption-new.pfx").read_bytes())
    observation = CertFolderCollector(lab.certs_dir, lab.password.encode()).collect("AOS1", Deadline.after(10))
    assert len(observation.problems) == 1
    assert observation.problems[0].reason is Reason.PARSE_ERROR
    assert "notes.pem" in observation.problems[0].message
    roots = [
        o for o in observation.certificates if o.store == "LocalMachine\\Root" and o.thumbprint == lab.ca.thumbprint
    ]
    assert len(roots) == 1


def test_wrong_password_is_a_problem_not_a_failure(lab: Lab) -> None:
    observation = CertFolderCollector(lab.certs_dir, b"wrong").collect("SQL1", Deadline.after(10))
    assert {p.reason for p in observation.problems} == {Reason.WRONG_PASSWORD}
    assert [o.store for o in observation.certificates] == ["LocalMachine\\Root"]


def test_missing_node_folder(lab: Lab) -> None:
    collector = CertFolderCollector(lab.certs_dir, nodes=("AOS9",))
    with pytest.raises(CollectorError) as caught:
        collector.collect("AOS9", Deadline.after(5))
    assert caught.value.reason is Reason.NOT_FOUND
