"""A production install as the deploy guides give it: the wheel plus the hashed lock, in a virtual environment of its own.

certmon's top-level packages (`daemon`, `collectors`, ...) share names with PyPI projects
(python-daemon installs `daemon`), so the guides install it into its own virtual environment;
this test does exactly that, from a folder outside the checkout, and checks the commands run
from the install and not from the source tree.
"""

from __future__ import annotations

import re
import subprocess
import sys
import venv
import zipfile
from pathlib import Path

import pytest
from packaging.requirements import Requirement

from tests.conftest import ROOT

LOCK = ROOT / "deploy" / "requirements.lock"


def _pins() -> dict[str, str]:
    return {
        m.group(1).lower().replace("_", "-"): m.group(2)
        for m in re.finditer(r"^([A-Za-z0-9_.-]+)==([^ ;\\]+)", LOCK.read_text(encoding="utf-8"), re.M)
    }


def test_the_lock_pins_every_dependency_within_its_range() -> None:
    import tomllib

    project = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    pins = _pins()
    for spec in project["dependencies"]:
        requirement = Requirement(spec)
        name = requirement.name.lower().replace("_", "-")
        assert name in pins, f"{name} is not in deploy/requirements.lock (run scripts/build-dist --lock)"
        assert requirement.specifier.contains(pins[name]), f"{name}=={pins[name]} outside {requirement.specifier}"
    # Resolved for Windows too: SSPI for Negotiate/Kerberos with the service's own logon, tz data.
    text = LOCK.read_text(encoding="utf-8")
    assert "sspilib==" in text and "sys_platform == 'win32'" in text
    assert all("--hash=sha256:" in block for block in text.split("\n\n") if "==" in block)


@pytest.mark.slow
def test_an_isolated_install_from_the_wheel_and_the_lock_runs(tmp_path: Path) -> None:
    built = subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "--quiet",
            "--no-deps",
            "--wheel-dir",
            str(tmp_path / "dist"),
            str(ROOT),
        ],
        capture_output=True,
        text=True,
        check=False,
        timeout=600,
    )
    assert built.returncode == 0, built.stderr
    (wheel,) = (tmp_path / "dist").glob("certmon-*-py3-none-any.whl")
    with zipfile.ZipFile(wheel) as archive:
        packages = {name.split("/", 1)[0] for name in archive.namelist()}
        assert {"daemon", "collectors", "remediations"} <= packages
        assert "collectors/winrm/inventory.ps1" in archive.namelist(), "the WinRM script ships in the wheel"
    target = tmp_path / "venv"
    venv.create(target, with_pip=True)
    python = target / "bin" / "python"
    for args in (["--require-hashes", "-r", str(LOCK)], ["--no-deps", str(wheel)]):
        done = subprocess.run(
            [str(python), "-m", "pip", "install", "--quiet", *args],
            capture_output=True,
            text=True,
            check=False,
            timeout=900,
        )
        assert done.returncode == 0, done.stderr[-3000:]
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    version = subprocess.run(
        [str(target / "bin" / "certmon"), "--version"], cwd=elsewhere, capture_output=True, text=True, check=False
    )
    assert version.returncode == 0 and "certmon" in version.stdout, version.stderr
    where = subprocess.run(
        [str(python), "-c", "import daemon, collectors; print(daemon.__file__); print(collectors.__file__)"],
        cwd=elsewhere,
        capture_output=True,
        text=True,
        check=True,
    )
    assert all(line.startswith(str(target)) for line in where.stdout.split()), where.stdout
