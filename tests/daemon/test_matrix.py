"""The node × role matrix of the status page, from real collections of the lab."""

from __future__ import annotations

import shutil
from datetime import datetime
from typing import Any

from daemon.app import Daemon
from daemon.matrix import certificate_matrix, expiry_state
from daemon.settings import Settings, load_settings
from simulator.lab import Lab
from simulator.tls import TlsEndpointServer


def _matrix(settings: Settings, now: datetime) -> dict[str, Any]:
    daemon = Daemon(settings, clock=lambda: now)
    try:
        return certificate_matrix(daemon.collect_once().evaluation, settings)
    finally:
        daemon.stop()


def _cell(matrix: dict[str, Any], node: str, role: str) -> dict[str, Any]:
    row = next(r for r in matrix["nodes"] if r["node"] == node)
    return row["cells"][role]


def test_cells_list_each_generation_with_days_left(lab: Lab, lab_settings: Settings, now: datetime) -> None:
    matrix = _matrix(lab_settings, now)
    assert matrix["roles"][:3] == ["ServiceFabric", "ServiceFabricClient", "ServiceFabricEncryption"]
    assert [r["node"] for r in matrix["nodes"]] == [
        "ORCH1",
        "ORCH2",
        "ORCH3",
        "AOS1",
        "AOS2",
        "AOS3",
        "BI1",
        "MR1",
        "SQL1",
    ]
    cell = _cell(matrix, "AOS1", "DataEncryption")
    new, old = lab.cert("DataEncryption", "new"), lab.cert("DataEncryption", "old")
    assert [(c["generation"], c["thumbprint"]) for c in cell["certificates"]] == [
        ("new", new.thumbprint),
        ("old", old.thumbprint),
    ]
    expected_days = (old.issued.cert.not_valid_after_utc - now).total_seconds() / 86400
    assert cell["certificates"][1]["days_left"] == round(expected_days, 1)
    # The old DataEncryption certificate is inside its 30-day critical window (DataEncryption: 90/30).
    assert cell["certificates"][1]["state"] == "critical" and cell["state"] == "critical"
    assert cell["needed"] is True
    assert _cell(matrix, "ORCH1", "DataEncryption") == {"needed": False, "state": "not-needed", "certificates": []}
    assert _cell(matrix, "SQL1", "SQLCluster")["needed"] is True


def test_a_missing_new_certificate_and_an_unread_node(lab_copy: Lab, now: datetime) -> None:
    (lab_copy.certs_dir / "AOS2" / "DataEncryption-new.pfx").unlink()
    shutil.rmtree(lab_copy.certs_dir / "BI1")
    matrix = _matrix(load_settings(lab_copy.config_file), now)
    missing = _cell(matrix, "AOS2", "DataEncryption")
    assert missing["state"] == "missing" and [c["generation"] for c in missing["certificates"]] == ["old"]
    assert _cell(matrix, "AOS1", "DataEncryption")["state"] == "critical"
    bi1 = next(r for r in matrix["nodes"] if r["node"] == "BI1")
    assert bi1["covered"] is False and bi1["reason"] == "no node certificate source reports this node"
    assert bi1["cells"]["SSRSHTTPS"]["state"] == "unknown"
    assert bi1["cells"]["DataEncryption"]["state"] == "not-needed"


def test_endpoint_certificates_are_listed_apart(lab: Lab, lab_settings: Settings, now: datetime) -> None:
    star = lab.cert("ServiceFabric", "new").issued
    server = TlsEndpointServer(star, (lab.ca,)).start()
    try:
        settings = lab_settings.model_copy(deep=True)
        settings.sources.tls = type(settings.sources.tls).model_validate(
            {
                "endpoints": [
                    {
                        "name": "aos",
                        "host": "ax.d365ffo.onprem.contoso.lab",
                        "port": server.port,
                        "addresses": ["127.0.0.1"],
                        "role": "ServiceFabric",
                    }
                ],
                "ca_bundle": lab.ca_bundle,
            }
        )
        matrix = _matrix(settings, now)
    finally:
        server.stop()
    [entry] = [e for e in matrix["elsewhere"] if e["thumbprint"] == star.thumbprint]
    assert entry["source"] == "tls" and entry["generation"] == "new" and entry["state"] == "ok"
    assert "ServiceFabric" in entry["roles"] and entry["where"]


def test_expiry_state_follows_the_role_window(lab_settings: Settings) -> None:
    assert expiry_state(-1, "DataEncryption", lab_settings) == "expired"
    assert expiry_state(29, "DataEncryption", lab_settings) == "critical"
    assert expiry_state(89, "DataEncryption", lab_settings) == "warning"
    assert expiry_state(89, "ServiceFabric", lab_settings) == "ok"
    assert expiry_state(13, "ServiceFabric", lab_settings) == "critical"
