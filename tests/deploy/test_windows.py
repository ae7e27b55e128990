"""deploy/windows/: the WinSW definition is well-formed and starts, stops and restarts certmon as intended.

Nothing here can run Windows; these checks hold the recipe to what certmon itself accepts.
"""

from __future__ import annotations

import re
import shlex
from typing import Any

from defusedxml import ElementTree

from daemon.cli import build_parser
from tests.conftest import ROOT

WINDOWS = ROOT / "deploy" / "windows"


def _service() -> Any:
    return ElementTree.parse(WINDOWS / "certmon-service.xml").getroot()


def _seconds(text: str) -> float:
    number, unit = re.fullmatch(r"\s*(\d+)\s*(sec|secs|min|mins)\s*", text).groups()
    return float(number) * (60 if unit.startswith("min") else 1)


def test_the_service_runs_certmon_run_from_its_virtual_environment() -> None:
    service = _service()
    assert service.findtext("executable").endswith(r"\.venv\Scripts\python.exe")
    arguments = shlex.split(service.findtext("arguments"), posix=False)
    assert arguments[:2] == ["-m", "daemon"]
    args = build_parser().parse_args([a.strip('"') for a in arguments[2:]])
    assert args.command == "run" and args.config.endswith(r"\certmon.yaml")
    env = {e.get("name"): e.get("value") for e in service.findall("env")}
    assert env["CERTMON_DATA_DIR"].endswith(r"\data") and env["CERTMON_ENVIRONMENT"] == "ENVIRONMENT"


def test_stop_gives_a_running_remediation_time_and_failures_restart() -> None:
    service = _service()
    # WinSW sends Ctrl+C, then waits stoptimeout before killing: as long as systemd's TimeoutStopSec.
    assert _seconds(service.findtext("stoptimeout")) >= 120
    assert [f.get("action") for f in service.findall("onfailure")] == ["restart", "restart"]


def test_the_account_is_a_gmsa_without_a_stored_password() -> None:
    account = _service().find("serviceaccount")
    assert account.findtext("username").endswith("$") and account.find("password") is None


def test_the_install_script_fills_every_placeholder() -> None:
    script = (WINDOWS / "install-certmon.ps1").read_text(encoding="utf-8")
    replaced = set(re.findall(r"\$xml\.Replace\('([^']+)'", script))
    assert replaced == {r"C:\certmon\.venv", r"CONTOSO\svc-certmon$", "ENVIRONMENT"}
    text = (WINDOWS / "certmon-service.xml").read_text(encoding="utf-8")
    for placeholder in replaced:
        text = text.replace(placeholder, "x")
    assert "ENVIRONMENT" not in text and "CONTOSO" not in text
    assert "check-config" in script, "the configuration is validated before the service is installed"
