"""`certmon status`: the rotation checklist as a table and as JSON, run the way operators run it."""

from __future__ import annotations

import json

from simulator.lab import Lab


def test_status_json_has_the_checklist(lab_copy: Lab, run_cli) -> None:  # type: ignore[no-untyped-def]
    done = run_cli("--config", str(lab_copy.config_file), "status", "--format", "json")
    assert done.returncode == 1, done.stderr
    payload = json.loads(done.stdout)
    steps = {s["step"]: s for s in payload["checklist"]}
    assert len(steps) == 15
    assert steps["certs-generated"]["status"] == "done"
    assert steps["sf-upgraded"]["status"] == "unknown" and "gateway" in steps["sf-upgraded"]["detail"]
    assert steps["localagent-updated"]["status"] == "pending"
    assert steps["certs-generated"]["title"] and isinstance(steps["certs-generated"]["evidence"], list)
    old = {c["role"]: c for c in payload["old_certificates"]}
    assert old["DataEncryption"]["safe_to_remove"] is False
    assert "reencryption-complete" in old["DataEncryption"]["blocking"]
    assert {f["rule"] for f in payload["findings"]} >= {"agent-config-thumbprint-stale", "cert-expiry-critical"}
    preflight = payload["preflight"]
    assert (preflight["remediation"], preflight["step"]) == ("sf-stage-rotation", "sf-upgraded")
    results = {c["name"]: (c["result"], c["reason"]) for c in preflight["checks"]}
    assert results["ClusterConfig.json configured"][0] == "pass"
    assert results["no upgrade in progress"][0] == "unknown" and "gateway" in results["no upgrade in progress"][1]
    stale = {f["source"]: f for f in payload["findings"] if f["rule"] == "agent-config-thumbprint-stale"}
    assert (stale["localagent"]["step"], stale["localagent"]["remediation"]) == (
        "localagent-updated",
        "localagent-config-update",
    )
    assert (stale["agentshare"]["step"], stale["agentshare"]["remediation"]) == (
        "deployment-config-updated",
        "deployment-config-update",
    )


def test_status_table_prints_the_checklist(lab_copy: Lab, run_cli) -> None:  # type: ignore[no-untyped-def]
    (lab_copy.certs_dir / "AOS2" / "DataEncryption-old.pfx").unlink()
    done = run_cli("--config", str(lab_copy.config_file), "status")
    assert done.returncode == 1, done.stderr
    out = done.stdout
    assert "ROTATION CHECKLIST" in out and "OLD CERTIFICATES (12)" in out
    checklist = out[out.index("ROTATION CHECKLIST") : out.index("OLD CERTIFICATES")]
    lines = [line for line in checklist.splitlines() if line.startswith(("certs-generated", "sf-upgraded"))]
    assert lines[0].split()[:2] == ["certs-generated", "done"]
    assert lines[1].split()[:2] == ["sf-upgraded", "unknown"]
    # Pending steps show their evidence under them.
    assert "  localagent-config.json clientCertThumbprint" in checklist
    assert "data-encryption-old-cert-removed-early" in out[out.index("FINDINGS") :]
    preflight = out[out.index("PRE-FLIGHT of sf-stage-rotation (step sf-upgraded)") : out.index("FINDINGS")]
    assert [line.split()[:2] for line in preflight.splitlines() if line.startswith("ClusterConfig.json configured")]
    row = next(line for line in preflight.splitlines() if line.startswith("no upgrade in progress"))
    assert row.split()[4] == "unknown", row
