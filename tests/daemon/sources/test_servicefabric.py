"""The servicefabric settings, check-config, and the demo's simulated gateway."""

from __future__ import annotations

import subprocess
from collections.abc import Callable
from datetime import datetime
from pathlib import Path

import pytest
import yaml

from daemon.app import Daemon
from daemon.settings import ConfigError, load_settings
from simulator.lab import Lab
from simulator.services import LabServices
from tests.sfkit import SfLab

Cli = Callable[..., subprocess.CompletedProcess[str]]


def _write(path: Path, sf: dict[str, object]) -> Path:
    path.write_text(yaml.safe_dump({"sources": {"servicefabric": sf}}), encoding="utf-8")
    return path


@pytest.mark.parametrize(
    ("section", "text"),
    [
        (
            {"gateways": ["http://sf:19080"]},
            "sources.servicefabric.gateways: Value error, 'http://sf:19080' is not an https",
        ),
        ({"server_thumbprints": ["abc"]}, "sources.servicefabric.server_thumbprints: Value error"),
        ({"node_health": "some"}, "sources.servicefabric.node_health: Input should be 'unhealthy', 'all' or 'none'"),
        (
            {"client_certificate": {"path": "c.pfx", "pasword_file": "p"}},
            "client_certificate.pasword_file: Extra inputs",
        ),
    ],
)
def test_bad_settings_name_the_field(tmp_path: Path, section: dict[str, object], text: str) -> None:
    with pytest.raises(ConfigError) as caught:
        load_settings(_write(tmp_path / "certmon.yaml", section))
    assert text in str(caught.value)


def test_pins_are_normalised_and_paths_resolved(tmp_path: Path) -> None:
    pasted = "\u200e" + " ".join(["ab"] * 20)
    (tmp_path / "secret.txt").write_text("pfx password\n")  # a *_file setting must name a readable file
    settings = load_settings(
        _write(
            tmp_path / "certmon.yaml",
            {
                "gateways": ["https://sf.contoso.lab"],
                "server_thumbprints": [pasted],
                "admin_certificates": [{"path": "admin.pfx", "password_file": "secret.txt"}],
            },
        )
    )
    section = settings.sources.servicefabric
    assert section.server_thumbprints == ["AB" * 20]
    assert section.admin_certificates[0].path == tmp_path / "admin.pfx"
    assert section.target() == "sf.contoso.lab"


def test_check_config_opens_the_client_certificates(sf: SfLab, run_cli: Cli) -> None:
    sf.write_settings()
    good = run_cli("-c", str(sf.lab.config_file), "check-config")
    assert good.returncode == 0, good.stderr
    assert "servicefabric" in good.stdout and "D365FOCluster" in good.stdout
    wrong = sf.lab.root / "secrets" / "wrong.txt"
    wrong.write_text("not the password\n", encoding="utf-8")
    sf.write_settings(admin_certificates=[{"path": "sf/admin-old.pfx", "password_file": str(wrong)}])
    bad = run_cli("-c", str(sf.lab.config_file), "check-config")
    assert bad.returncode == 2
    assert "sources.servicefabric.admin_certificates.0: " in bad.stderr
    assert "admin-old.pfx: wrong password for PKCS#12 file" in bad.stderr
    assert "not the password" not in bad.stderr + bad.stdout


def test_the_demo_services_include_the_gateway(lab_copy: Lab, now: datetime) -> None:
    with LabServices(lab_copy, sf_upgrade_seconds=1.0) as services:
        services.write_config()
        settings = load_settings(lab_copy.config_file)
        assert services.sf_gateway is not None and f"SF gateway :{services.sf_gateway.port}" in services.summary()
        section = settings.sources.servicefabric
        assert section.gateways == [f"https://sf.d365ffo.onprem.contoso.lab:{services.sf_gateway.port}"]
        assert section.ca_bundle == lab_copy.ca_bundle
        settings.sources.certfolder.nodes = ["ORCH1"]
        daemon = Daemon(settings, clock=lambda: now)
        try:
            daemon.collectors["servicefabric"].connector.clock = lambda: now  # type: ignore[attr-defined]
            daemon.runner.run_source("servicefabric")
            view = daemon.publish()
        finally:
            daemon.stop()
    (result,) = view.evaluation.snapshot.of_source("servicefabric")
    assert result.health.ok, result.health.message
    assert services.sf_gateway.cluster.step_seconds == 1.0


def test_demo_accepts_the_upgrade_knob(tmp_path: Path, run_cli: Cli) -> None:
    result = run_cli("demo", "--dir", str(tmp_path / "demo"), "--no-run", "--sf-upgrade-seconds", "2")
    assert result.returncode == 0, result.stderr
    assert "lab environment generated" in result.stdout
