"""deploy/systemd/: the units pass `systemd-analyze verify` and keep a low exposure score offline."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from daemon.httpserve import Limits
from tests.conftest import ROOT

SYSTEMD_ANALYZE = shutil.which("systemd-analyze")
UNITS = ROOT / "deploy" / "systemd"
INSTALLED = "/opt/certmon/.venv/bin/certmon"

pytestmark = pytest.mark.skipif(SYSTEMD_ANALYZE is None, reason="systemd-analyze (Debian package systemd) missing")


def _copy(tmp_path: Path, unit: str, name: str | None = None) -> Path:
    # verify checks that ExecStart is executable: point it at this interpreter, keep everything else.
    text = (UNITS / unit).read_text(encoding="utf-8")
    assert INSTALLED in text
    target = tmp_path / (name or unit)
    target.write_text(text.replace(INSTALLED, f"{sys.executable} -m daemon"), encoding="utf-8")
    return target


def _analyze(*args: str | Path) -> subprocess.CompletedProcess[str]:
    assert SYSTEMD_ANALYZE is not None
    return subprocess.run(
        [SYSTEMD_ANALYZE, *map(str, args)], capture_output=True, text=True, timeout=120, check=False, cwd="/"
    )


def _service(unit: str) -> dict[str, list[str]]:
    values: dict[str, list[str]] = {}
    section = ""
    for raw in (UNITS / unit).read_text(encoding="utf-8").splitlines():
        line = raw.strip()
        if line.startswith("["):
            section = line.strip("[]")
        elif "=" in line and not line.startswith("#") and section == "Service":
            key, _, value = line.partition("=")
            values.setdefault(key, []).append(value)
    return values


@pytest.mark.parametrize(
    ("unit", "name"), [("certmon.service", None), ("certmon@.service", "certmon@contoso-prod.service")]
)
def test_units_verify_cleanly(tmp_path: Path, unit: str, name: str | None) -> None:
    path = _copy(tmp_path, unit, name)
    done = _analyze("verify", path)
    assert done.returncode == 0, done.stderr
    assert done.stderr.strip() == "", "no unknown keys or other warnings"


def test_verify_would_catch_a_mistake(tmp_path: Path) -> None:
    path = _copy(tmp_path, "certmon.service")
    path.write_text(path.read_text().replace("NoNewPrivileges=yes", "NoNewPrivilege=yes"), encoding="utf-8")
    assert "Unknown key" in _analyze("verify", path).stderr


@pytest.mark.parametrize(
    ("unit", "name"), [("certmon.service", None), ("certmon@.service", "certmon@contoso-prod.service")]
)
def test_exposure_stays_low(tmp_path: Path, unit: str, name: str | None) -> None:
    path = _copy(tmp_path, unit, name)
    # --threshold is the exposure × 10: the units score 1.x of 10 ("OK"); fail above 2.0.
    done = _analyze("security", "--offline=true", "--threshold=20", path)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr


def test_the_hardening_the_issue_asks_for() -> None:
    for unit in ("certmon.service", "certmon@.service"):
        service = _service(unit)
        assert service["User"] == ["certmon"] and service["NoNewPrivileges"] == ["yes"]
        assert service["ProtectSystem"] == ["strict"] and service["PrivateTmp"] == ["yes"]
        assert service["ProtectHome"] == ["yes"] and service["CapabilityBoundingSet"] == [""]
        assert service["RestrictAddressFamilies"] == ["AF_INET AF_INET6 AF_UNIX"]
        assert service["SystemCallFilter"][0] == "@system-service"
        # The only writable place is the state directory, which is also certmon's data_dir.
        data_dir = service["ReadWritePaths"][0]
        assert f"CERTMON_DATA_DIR={data_dir}" in service["Environment"]
        assert data_dir == "/var/lib/" + service["StateDirectory"][0]
        # Room for the listeners' connection caps plus the collectors' reserve (daemon.httpserve).
        assert int(service["LimitNOFILE"][0]) >= 2 * Limits().max_connections + Limits().fd_reserve
    template = _service("certmon@.service")
    assert "--config /etc/certmon/%i.yaml" in template["ExecStart"][0]
    assert "CERTMON_ENVIRONMENT=%i" in template["Environment"]


def test_the_dedicated_user_is_declared() -> None:
    lines = [
        line.split()
        for line in (UNITS / "certmon.sysusers.conf").read_text(encoding="utf-8").splitlines()
        if line and not line.startswith("#")
    ]
    assert lines[0][:3] == ["u", "certmon", "-"] and lines[0][-1] == "/var/lib/certmon"
