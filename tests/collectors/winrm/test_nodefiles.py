"""Files to a simulated node and back over real pywinrm (NTLM, message encryption): chunks, hashes, clean-up."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from collectors.base import Deadline
from collectors.winrm import WinRMCollector, WinRMOptions
from collectors.winrm.command import quote
from collectors.winrm.nodefiles import (
    MAX_FILE_BYTES,
    UPLOAD_CHUNK,
    NodeFileError,
    NodeFiles,
    command_line,
    temp_folder_script,
    write_chunk_script,
)
from simulator.lab import Lab
from simulator.winrm import SimulatedFleet
from simulator.winrm.nodefile import read_node_facts

TEMP = "C:\\Users\\svc-certmon\\AppData\\Local\\Temp"


@pytest.fixture
def node(lab_copy: Lab) -> Iterator[tuple[NodeFiles, Path]]:
    """A NodeFiles session to AOS1, and the lab folder standing for its account's temporary folder."""
    with SimulatedFleet.from_lab(lab_copy, names=["AOS1"]) as fleet:
        options = WinRMOptions(username=lab_copy.winrm_username, password=lab_copy.winrm_password)
        collector = WinRMCollector(options, nodes=["AOS1"], addresses=fleet.addresses())
        files = NodeFiles(collector.command_session("AOS1"))
        folder = (
            lab_copy.certs_dir / "AOS1" / read_node_facts(lab_copy.certs_dir / "AOS1")["temp"]["folder"]
        ).resolve()
        try:
            yield files, folder
        finally:
            files.close()
            collector.close()


def test_a_file_goes_to_the_node_and_back_in_chunks(node: tuple[NodeFiles, Path]) -> None:
    files, temp = node
    deadline = Deadline.after(120)
    folder = files.make_temp_folder("certmon-test-1", deadline)
    assert folder == f"{TEMP}\\certmon-test-1" and (temp / "certmon-test-1").is_dir()
    data = os.urandom(3 * UPLOAD_CHUNK + 17)  # four chunks, the last one short
    files.upload(data, f"{folder}\\sub\\file.bin", deadline)
    assert (temp / "certmon-test-1" / "sub" / "file.bin").read_bytes() == data
    assert files.download(f"{folder}\\sub\\file.bin", deadline) == data
    files.upload(b"", f"{folder}\\empty.txt", deadline)
    assert files.download(f"{folder}\\empty.txt", deadline) == b""
    files.remove_folder(folder, deadline)
    assert not (temp / "certmon-test-1").exists()


def test_an_existing_file_is_never_overwritten(node: tuple[NodeFiles, Path]) -> None:
    files, temp = node
    deadline = Deadline.after(60)
    folder = files.make_temp_folder("certmon-test-2", deadline)
    files.upload(b"first", f"{folder}\\a.txt", deadline)
    with pytest.raises(NodeFileError, match="already exists"):
        files.upload(b"second", f"{folder}\\a.txt", deadline)
    assert (temp / "certmon-test-2" / "a.txt").read_bytes() == b"first"
    with pytest.raises(NodeFileError, match="already exists"):
        files.make_temp_folder("certmon-test-2", deadline)


def test_a_file_changed_on_the_node_after_the_copy_is_caught(node: tuple[NodeFiles, Path]) -> None:
    files, temp = node
    deadline = Deadline.after(60)
    folder = files.make_temp_folder("certmon-test-3", deadline)
    files.upload(b"AAAA", f"{folder}\\a.txt", deadline)
    # Appending a chunk outside upload() leaves a file whose SHA-256 is not what was sent.
    files.run(write_chunk_script(f"{folder}\\a.txt", b"BB", first=False), deadline)
    with pytest.raises(NodeFileError, match="SHA-256") as caught:
        files._check(f"{folder}\\a.txt", 4, "0" * 64, deadline, "after the copy to")
    assert "the node has 6 bytes" in str(caught.value)
    assert (temp / "certmon-test-3" / "a.txt").read_bytes() == b"AAAABB"


def test_missing_paths_fail_as_powershell_says(node: tuple[NodeFiles, Path]) -> None:
    files, _ = node
    deadline = Deadline.after(60)
    with pytest.raises(NodeFileError, match=r"Cannot find path 'C:\\Users\\svc-certmon\\.*nothing\.txt' because"):
        files.download(f"{TEMP}\\nothing.txt", deadline)
    with pytest.raises(NodeFileError, match="Could not find a part of the path 'D:"):
        files.upload(b"x", "D:\\Elsewhere\\x.txt", deadline)
    with pytest.raises(NodeFileError, match="Cannot find path"):
        files.remove_folder(f"{TEMP}\\certmon-none", deadline)


def test_sizes_and_names_are_bounded() -> None:
    with pytest.raises(ValueError, match="invalid temporary folder name"):
        temp_folder_script("..\\Windows")
    # The largest chunk with a long path still fits cmd.exe's line.
    command_line(write_chunk_script("C:\\" + "x" * 240 + "\\f.bin", b"\xff" * UPLOAD_CHUNK, first=True))
    assert quote("it's") == "'it''s'"


def test_a_file_over_the_limit_is_not_sent(node: tuple[NodeFiles, Path]) -> None:
    files, temp = node
    with pytest.raises(NodeFileError, match="over the"):
        files.upload(b"\0" * (MAX_FILE_BYTES + 1), f"{TEMP}\\big.bin", Deadline.after(10))
    assert not (temp / "big.bin").exists()


def test_folders_left_by_killed_runs_are_removed(node: tuple[NodeFiles, Path]) -> None:
    files, temp = node
    deadline = Deadline.after(60)
    assert files.remove_stale("certmon-rotate-", deadline) == []
    for name in ("certmon-rotate-1", "Certmon-Rotate-2", "other"):
        files.make_temp_folder(name, deadline)
    files.upload(b"x", f"{TEMP}\\certmon-rotate-1\\agent\\x.json", deadline)
    assert files.remove_stale("certmon-rotate-", deadline) == ["certmon-rotate-1", "Certmon-Rotate-2"]
    assert [p.name for p in temp.iterdir()] == ["other"]
