"""Pre-flight checks before a Service Fabric configuration upgrade (issue 16), on the simulated gateway and samples."""

from __future__ import annotations

import json
from datetime import datetime
from pathlib import Path

from collectors.servicefabric.evidence import SfRotation
from remediations.servicefabric import StageRotation
from remediations.sfpreflight import differences, pair_differs_check
from tests.sfkit import SfLab, remediating

SAMPLES = Path(__file__).resolve().parents[1] / "samples" / "servicefabric"
STAGE = StageRotation()


def _failed(sf: SfLab, now: datetime) -> dict[str, str]:
    run = remediating(sf, now)
    try:
        return {c.name: c.detail for c in STAGE.preconditions(run.ctx) if not c.ok}
    finally:
        run.close()


def _edit_running(sf: SfLab, change) -> None:  # type: ignore[no-untyped-def]
    document = json.loads(sf.cluster.running_text())
    change(document)
    sf.cluster.config_text = json.dumps(document, indent=2)


def test_the_lab_passes_every_preflight_check(sf: SfLab, now: datetime) -> None:
    sf.unstage_file()
    run = remediating(sf, now)
    try:
        checks = {c.name: c for c in STAGE.preconditions(run.ctx)}
    finally:
        run.close()
    for name in (
        "primary and secondary differ",
        "configuration version increases",
        "no in-place swap of a primary",
        "file equals the running configuration apart from the rotation",
    ):
        assert checks[name].ok, checks[name]
    assert checks["configuration version increases"].detail == "2.0.0 -> 2.0.1"


def test_a_stale_export_is_refused_with_what_it_would_undo(sf: SfLab, now: datetime) -> None:
    sf.unstage_file()
    _edit_running(sf, lambda d: d["Properties"].__setitem__("ReliabilityLevel", "Gold"))
    failed = _failed(sf, now)
    detail = failed["file equals the running configuration apart from the rotation"]
    assert detail.startswith("properties.reliabilitylevel: file ")
    assert "running 'Gold'" in detail and "Get-ServiceFabricClusterConfiguration" in detail


def test_a_version_that_does_not_increase_is_refused(sf: SfLab, now: datetime) -> None:
    sf.unstage_file()
    _edit_running(sf, lambda d: d.__setitem__("ClusterConfigurationVersion", "2.0.7"))
    failed = _failed(sf, now)
    assert failed["configuration version increases"] == (
        "the upgrade would carry version 2.0.1, not greater than the running 2.0.7: Service Fabric refuses it; "
        "export the running configuration and stage from it"
    )


def test_an_in_place_swap_is_refused(sf: SfLab, now: datetime) -> None:
    new = sf.lab.cert("ServiceFabric", "new").thumbprint
    old = sf.lab.cert("ServiceFabric", "old").thumbprint
    sf.unstage_file()
    document = json.loads(sf.lab.cluster_config.read_text(encoding="utf-8"))
    document["properties"]["security"]["CertificateInformation"]["ServerCertificate"] = {
        "Thumbprint": new,
        "X509StoreName": "My",
    }
    sf.lab.cluster_config.write_text(json.dumps(document, indent=4), encoding="utf-8")
    failed = _failed(sf, now)
    assert failed["no in-place swap of a primary"].startswith(
        f"server: the cluster runs {old}, the file names {new} without keeping {old} as ThumbprintSecondary"
    )


def test_an_identical_pair_is_refused() -> None:
    same = "A" * 40
    check = pair_differs_check(SfRotation(new_server=same, old_server=same, new_client="B" * 40, old_client="C" * 40))
    assert not check.ok and "a primary equal to its secondary stops the upgrade" in check.detail
    assert pair_differs_check(SfRotation(new_server=same, old_server="D" * 40)).ok


def test_a_camel_file_and_the_clusters_pascal_answer_do_not_differ() -> None:
    camel = json.loads((SAMPLES / "ClusterConfig.X509.ReverseProxy.json").read_text(encoding="utf-8"))
    answer = json.loads((SAMPLES / "GetClusterConfiguration.ReverseProxy.json").read_text(encoding="utf-8"))
    assert differences(camel, json.loads(answer["ClusterConfiguration"])) == []
    camel["properties"]["nodeTypes"][0]["httpGatewayEndpointPort"] = "19443"
    assert differences(camel, json.loads(answer["ClusterConfiguration"])) == [
        "properties.nodetypes[0].httpgatewayendpointport: file '19443', running '19080'"
    ]
