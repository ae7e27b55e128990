"""The evidence bundle for a change ticket: readable without certmon, checked with sha256sum."""

from __future__ import annotations

import io
import json
import shutil
import subprocess
import zipfile
from datetime import datetime
from pathlib import Path

import pytest

from simulator.lab import Lab
from tests.daemon.apikit import NAME, TOKEN, TOKEN_FILE, bearer, call, configure_api, running, write_token

SHA256SUM = shutil.which("sha256sum")


@pytest.mark.skipif(SHA256SUM is None, reason="sha256sum (coreutils) is not installed")
def test_the_status_page_download_carries_the_applied_plan_and_verifies(
    cli_lab: Lab, now: datetime, tmp_path: Path
) -> None:
    write_token(cli_lab)
    configure_api(cli_lab, token_file=TOKEN_FILE)
    with running(cli_lab, now) as daemon:
        assert daemon.api is not None
        plan = call(daemon.api.url + f"/api/remediations/{NAME}/plan", "POST").json()["plan"]
        applied = call(
            daemon.api.url + f"/api/remediations/{NAME}/apply", "POST", {"expect_plan": plan["digest"]}, bearer()
        )
        assert applied.status == 200, applied.body
        page = call(daemon.api.url + "/").body.decode()
        download = call(daemon.api.url + "/api/evidence")
    assert 'href="api/evidence"' in page
    assert download.status == 200 and download.headers["Content-Type"] == "application/zip"
    with zipfile.ZipFile(io.BytesIO(download.body)) as archive:
        archive.extractall(tmp_path / "download")
    (folder,) = (tmp_path / "download").iterdir()
    assert sorted(p.name for p in folder.iterdir()) == ["MANIFEST.sha256", "evidence.html", "evidence.json"]
    check = subprocess.run(
        [SHA256SUM, "-c", "MANIFEST.sha256"], cwd=folder, capture_output=True, text=True, check=False
    )
    assert check.returncode == 0 and check.stdout.count(": OK") == 2, check.stdout + check.stderr
    data = json.loads((folder / "evidence.json").read_text())
    (record,) = [r for r in data["remediations_applied"] if r["outcome"] == "applied"]
    assert record["remediation"] == NAME and record["plan"]["digest"] == plan["digest"]
    assert {s["step"]: s["status"] for s in data["checklist"]}["localagent-updated"] == "done"
    new_sf = cli_lab.cert("ServiceFabric", "new").thumbprint
    assert any(c["thumbprint"] == new_sf and "ServiceFabric" in c["roles"] for c in data["certificates"])
    html = (folder / "evidence.html").read_text()
    assert "<script" not in html and "http" not in html.split("<body>", 1)[1].split("localagent", 1)[0]
    assert plan["digest"] in html and "Rotation checklist" in html
    assert TOKEN not in html and TOKEN not in json.dumps(data), "no secret in the bundle"


def test_status_evidence_writes_the_bundle_and_refuses_a_folder_in_use(lab: Lab, tmp_path: Path, run_cli) -> None:  # type: ignore[no-untyped-def]
    target = tmp_path / "ticket-4711"
    done = run_cli("--config", str(lab.config_file), "status", "--evidence", str(target))
    assert done.returncode in (1, 3), done.stderr
    assert sorted(p.name for p in target.iterdir()) == ["MANIFEST.sha256", "evidence.html", "evidence.json"]
    again = run_cli("--config", str(lab.config_file), "status", "--evidence", str(target))
    assert again.returncode == 2 and "not empty" in again.stderr
