"""deploy/alertmanager/: the example routing is valid, pages critical alerts and tickets warnings."""

from __future__ import annotations

import shutil
import subprocess

import pytest

from tests.conftest import ROOT

AMTOOL = shutil.which("amtool")
CONFIG = ROOT / "deploy" / "alertmanager" / "alertmanager.yml"

pytestmark = pytest.mark.skipif(AMTOOL is None, reason="amtool (Debian package prometheus-alertmanager) missing")


def _amtool(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([AMTOOL, *args], capture_output=True, text=True, check=False, timeout=60)


def test_check_config() -> None:
    done = _amtool("check-config", str(CONFIG))
    assert done.returncode == 0, done.stdout + done.stderr
    assert "SUCCESS" in done.stdout and "1 templates" in done.stdout


@pytest.mark.parametrize(
    ("labels", "receiver"),
    [
        (("severity=critical", "alertname=CertmonDataEncryptionOldCertRemovedEarly"), "d365-oncall-pager"),
        (("severity=critical", "alertname=CertmonAbsent"), "d365-oncall-pager"),
        (("severity=warning", "alertname=CertmonSourceDown"), "d365-team-tickets"),
        (("alertname=SomethingWithoutSeverity",), "d365-team-tickets"),
    ],
)
def test_routing(labels: tuple[str, ...], receiver: str) -> None:
    done = _amtool("config", "routes", "test", f"--config.file={CONFIG}", f"--verify.receivers={receiver}", *labels)
    assert done.returncode == 0, done.stdout + done.stderr
    assert done.stdout.strip() == receiver


def test_mail_template_renders() -> None:
    template = str(CONFIG.parent / "certmon.tmpl")
    body = _amtool(
        "template", "render", f"--template.glob={template}", '--template.text={{ template "certmon.body" . }}'
    )
    assert body.returncode == 0, body.stderr
    assert "What to do:" in body.stdout
    subject = _amtool(
        "template", "render", f"--template.glob={template}", '--template.text={{ template "certmon.subject" . }}'
    )
    assert subject.returncode == 0 and subject.stdout.startswith("[")
