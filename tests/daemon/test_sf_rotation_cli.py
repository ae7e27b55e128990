"""A whole Service Fabric rotation with `certmon remediate ... --apply`, against the simulated gateway over mutual TLS."""

from __future__ import annotations

import json
import subprocess
from collections.abc import Callable
from typing import Any

from collectors.clusterconfig import load_cluster_config
from tests.sfkit import SfLab

Cli = Callable[..., subprocess.CompletedProcess[str]]


def _remediate(run_cli: Cli, sf: SfLab, *args: str) -> tuple[int, dict[str, Any], str]:
    result = run_cli("-c", str(sf.lab.config_file), "remediate", *args, "--format", "json")
    return result.returncode, json.loads(result.stdout), result.stderr


def test_stage_upgrade_and_clean_up_from_the_command_line(sf: SfLab, run_cli: Cli) -> None:
    lab = sf.lab
    old, new = lab.cert("ServiceFabric", "old").thumbprint, lab.cert("ServiceFabric", "new").thumbprint
    old_client, new_client = (
        lab.cert("ServiceFabricClient", "old").thumbprint,
        lab.cert("ServiceFabricClient", "new").thumbprint,
    )
    sf.unstage_file()
    # The subprocess validates at the wall clock: pin the gateway's old and new certificates instead of the CA.
    sf.write_settings(ca_bundle=None, server_thumbprints=[old, new])

    code, listing, _ = _remediate(run_cli, sf)
    applies = {r["name"]: r["applies"] for r in listing["remediations"]}
    assert applies == {
        "localagent-config-update": False,
        "sf-stage-rotation": True,
        "sf-cleanup-old-certs": False,
        "sf-replica-check-timeout": False,
        # The SQL and share remediations have their own evidence: the flight and key are off in the
        # lab's AXDB; the share config.json and Credentials.json wait for the cluster to run the new certificates.
        "enable-reencryption": True,
        "deployment-config-update": False,
        "credentials-json-rotate": False,
    }

    code, staged, progress = _remediate(run_cli, sf, "sf-stage-rotation", "--apply")
    assert code == 0, staged["message"]
    assert staged["outcome"] == "applied"
    assert [c["kind"] for c in staged["plan"]["changes"]] == ["file", "http"]
    assert "progress: sf-stage-rotation: the gateway accepted the configuration upgrade to 2.0.1" in progress
    assert sf.cluster.status()["UpgradeState"] == "RollingForwardInProgress"

    code, refused, _ = _remediate(run_cli, sf, "sf-cleanup-old-certs", "--apply")
    assert (code, refused["outcome"]) == (1, "refused")
    failed = [c["name"] for c in refused["checks"] if not c["ok"]]
    assert failed == [
        "staged configuration upgrade completed",
        "new certificates in use",
        "re-encryption finished (the runbook cleans up last)",
    ]

    sf.finish_upgrade()
    sf.finish_reencryption()
    code, cleaned, _ = _remediate(run_cli, sf, "sf-cleanup-old-certs", "--apply")
    assert code == 0, cleaned["message"]
    assert cleaned["outcome"] == "applied"
    sf.finish_upgrade()

    final = load_cluster_config(lab.cluster_config)
    assert final.version == "2.0.2"
    assert {(c.thumbprint, c.thumbprint_secondary) for c in final.certificates} == {(new, "")}
    assert [(c.thumbprint, c.is_admin) for c in final.clients] == [(new_client, True)]
    running = json.loads(sf.cluster.running_text())
    assert running["ClusterConfigurationVersion"] == "2.0.2"
    posts = [who for method, _path, who in sf.gateway.requests if method == "POST"]
    assert posts == [old_client, new_client]

    code, listing, _ = _remediate(run_cli, sf)
    reasons = {r["name"]: r["reason"] for r in listing["remediations"]}
    assert (
        reasons["sf-stage-rotation"]
        == "nothing to change: ClusterConfig.json is rotated (version 2.0.2) and the cluster runs it"
    )
    assert reasons["sf-cleanup-old-certs"] == reasons["sf-stage-rotation"]
    assert {r["name"]: r["applies"] for r in listing["remediations"]}["localagent-config-update"] is True
