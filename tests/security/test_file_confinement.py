"""File edits stay where they were configured: no `..`, no link planted before or after the plan, no backup via a link.

Refusals at planning time are tested with each source (tests/collectors/test_agentshare.py:
other shares, `..`, `.`, streams, links out of the share; tests/remediations/
test_deployment_config.py: a link planted after collection). Here: any location text at all,
a link planted between plan and apply (the file or a folder above it), and planted links in the
backup folder.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from collectors.agentshare import AgentShare
from collectors.errors import CollectorError
from remediations.base import RemediationContext
from remediations.checkpoint import Checkpoint, TargetChanged
from remediations.deploymentconfig import DeploymentConfigUpdate
from remediations.files import write_backup
from remediations.plan import FileChange
from simulator.agentshare import DEPLOYMENT_FOLDER, deployment_config, write_json
from simulator.lab import Lab

UNC = "\\\\DC1\\D365FFOStorage\\agent"
PIECES = st.sampled_from(["..", ".", "", "wp", "config.json", "CONFIG.JSON", "x:y", "a.", "..\\..", "/", "\\", "~"])


@pytest.fixture(scope="module")
def share(tmp_path_factory: pytest.TempPathFactory) -> AgentShare:
    """An agent share with one deployment's config.json and a link out of it."""
    base = tmp_path_factory.mktemp("share")
    root = base / "agent"
    write_json(root / "wp" / "config.json", deployment_config("A" * 40, "B" * 40, "x"))
    (base / "outside").mkdir()
    write_json(base / "outside" / "config.json", deployment_config("A" * 40, "B" * 40, "x"))
    os.symlink(base / "outside", root / "escape")
    return AgentShare(root, UNC)


@settings(max_examples=300, derandomize=True, database=None, deadline=None)
@given(
    prefix=st.sampled_from([UNC, UNC.lower(), "\\\\OTHER\\share", "", "/", "//DC1/D365FFOStorage/agent", "C:"]),
    parts=st.lists(PIECES | st.text(max_size=8) | st.just("escape"), max_size=6),
    separator=st.sampled_from(["\\", "/"]),
)
def test_any_location_resolves_inside_the_share_or_is_refused(
    share: AgentShare, prefix: str, parts: list[str], separator: str
) -> None:
    location = separator.join([prefix, *parts])
    try:
        path = share.resolve(location)
    except CollectorError as err:
        assert "refused" in err.message
        return
    real_root = os.path.realpath(share.root)
    assert os.path.commonpath([real_root, os.path.realpath(path)]) == real_root
    assert path.name.lower() == "config.json"


def test_a_link_planted_between_plan_and_apply_is_refused(
    lab_copy: Lab, ctx: RemediationContext, tmp_path: Path
) -> None:
    plan = DeploymentConfigUpdate().plan(ctx)
    (change,) = plan.files()
    # The attacker's copy is byte-identical: only the resolution can tell the files apart.
    outside = tmp_path / "outside"
    outside.mkdir()
    victim = outside / "config.json"
    shutil.copy(change.path, victim)
    change.path.unlink()
    os.symlink(victim, change.path)
    with pytest.raises(TargetChanged, match="a link was planted or moved"):
        Checkpoint(tmp_path / "backups").write_file(change)
    assert victim.read_bytes() == change.before
    assert not (tmp_path / "backups").exists()  # refused before the backup, too


def test_a_folder_link_planted_between_plan_and_apply_is_refused(
    lab_copy: Lab, ctx: RemediationContext, tmp_path: Path
) -> None:
    (change,) = DeploymentConfigUpdate().plan(ctx).files()
    folder = lab_copy.agent_share.joinpath(*DEPLOYMENT_FOLDER)
    outside = tmp_path / "outside"
    shutil.copytree(folder, outside)
    shutil.rmtree(folder)
    os.symlink(outside, folder)
    with pytest.raises(TargetChanged, match="now resolves to"):
        Checkpoint(tmp_path / "backups").write_file(change)
    assert (outside / "config.json").read_bytes() == change.before


def test_an_operators_own_link_is_followed(tmp_path: Path) -> None:
    # A configured file that is a link when the plan is made stays a legitimate target.
    real = tmp_path / "real" / "localagent-config.json"
    real.parent.mkdir()
    real.write_bytes(b'{"a": 1}')
    link = tmp_path / "localagent-config.json"
    os.symlink(real, link)
    Checkpoint(tmp_path / "backups").write_file(FileChange(link, b'{"a": 1}', b'{"a": 2}'))
    assert link.is_symlink() and real.read_bytes() == b'{"a": 2}'


def test_a_backup_never_follows_a_planted_link(tmp_path: Path) -> None:
    folder = tmp_path / "backups" / "run"
    folder.mkdir(parents=True)
    victim = tmp_path / "victim.txt"
    victim.write_bytes(b"keep me")
    os.symlink(victim, folder / "Credentials.json")  # a live link
    os.symlink(tmp_path / "nothing-here", folder / "2-Credentials.json")  # a dangling one
    backup = write_backup(tmp_path / "Credentials.json", b"secret values", folder)
    assert backup == folder / "3-Credentials.json" and not backup.is_symlink()
    assert backup.read_bytes() == b"secret values" and backup.stat().st_mode & 0o777 == 0o600
    assert victim.read_bytes() == b"keep me"
    assert not (tmp_path / "nothing-here").exists()


def test_a_backup_folder_that_is_a_link_is_refused(tmp_path: Path) -> None:
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    folder = tmp_path / "backups" / "run"
    folder.parent.mkdir()
    os.symlink(elsewhere, folder)
    with pytest.raises(CollectorError, match="backup folder is a symbolic link"):
        write_backup(tmp_path / "Credentials.json", b"secret values", folder)
    assert list(elsewhere.iterdir()) == []
