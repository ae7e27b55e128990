"""The rotation checklist decided from the lab's evidence: done, pending, not applicable, unknown."""

from __future__ import annotations

from datetime import datetime

from daemon.evaluator import Evaluation
from daemon.rotation import STEPS, StepStatus
from simulator.lab import Lab
from tests.daemon.scenarios import Scenario

DONE, PENDING, NA, UNKNOWN = StepStatus.DONE, StepStatus.PENDING, StepStatus.NOT_APPLICABLE, StepStatus.UNKNOWN


def _states(evaluation: Evaluation) -> dict[str, StepStatus]:
    return {s.step: s.status for s in evaluation.checklist.steps}


def _state(evaluation: Evaluation, step: str):  # type: ignore[no-untyped-def]
    state = evaluation.checklist.state(step)
    assert state is not None
    return state


def test_staged_lab(scenario: Scenario) -> None:
    evaluation = scenario.collect()
    assert [s.step for s in evaluation.checklist.steps] == [s.id for s in STEPS]
    assert _states(evaluation) == {
        "scripts-updated": DONE,
        "certs-generated": DONE,
        "certs-installed": DONE,
        "sf-staged": DONE,
        "sf-upgraded": UNKNOWN,
        "localagent-updated": PENDING,
        "deployment-config-updated": PENDING,
        "credentials-rotated": PENDING,
        "axdb-backed-up": DONE,
        "lcs-settings-applied": UNKNOWN,
        "reencryption-enabled": PENDING,
        "reencryption-complete": PENDING,
        "sql-adfs-checked": UNKNOWN,
        "sf-cleaned": PENDING,
        "old-certs-removable": PENDING,
    }
    generated = _state(evaluation, "certs-generated")
    assert generated.detail.startswith("12 roles rotated")
    old_de, new_de = (scenario.lab.cert("DataEncryption", g).thumbprint for g in ("old", "new"))
    assert f"DataEncryption: {old_de[:8]}… -> {new_de[:8]}…" in generated.evidence
    assert (
        _state(evaluation, "certs-installed").detail == "all 44 new certificate installations present with private keys"
    )
    assert "the gateway source (sources.servicefabric) is not configured" in _state(evaluation, "sf-upgraded").detail
    assert _state(evaluation, "reencryption-complete").detail.startswith("waits for reencryption-enabled")
    assert "EnableEncryptedDataCrawlerRotationTask" in _state(evaluation, "reencryption-enabled").detail
    assert "full backup finished" in _state(evaluation, "axdb-backed-up").detail
    agent = _state(evaluation, "localagent-updated")
    assert "serverCertThumbprint" in agent.detail and "not the new ServiceFabric certificate" in agent.detail
    cleaned = _state(evaluation, "sf-cleaned")
    assert "ThumbprintSecondary" in cleaned.detail and any("old client" in e for e in cleaned.evidence)
    removable = _state(evaluation, "old-certs-removable")
    assert removable.detail == (
        "waits for localagent-updated, deployment-config-updated, credentials-rotated, reencryption-enabled, "
        "reencryption-complete and 1 more"
    )


def test_before_the_rotation(lab_before: Lab, now: datetime) -> None:
    lab = lab_before
    evaluation = Scenario(lab, now).collect()
    states = _states(evaluation)
    assert states["scripts-updated"] is PENDING
    assert "rename Infrastructure to InfrastructureOld" in _state(evaluation, "scripts-updated").detail
    assert states["certs-generated"] is PENDING and states["sf-staged"] is PENDING
    assert states["sf-cleaned"] is DONE, "no secondary in the cluster configuration"
    assert states["old-certs-removable"] is NA
    assert evaluation.checklist.old_certificates == ()


def test_without_sources_every_step_is_unknown_not_done(scenario: Scenario) -> None:
    def nothing_but_certificates(settings) -> None:  # type: ignore[no-untyped-def]
        settings.sources.configtemplate.infrastructure = None
        settings.sources.clusterconfig.path = None
        settings.sources.localagent.path = None

    evaluation = scenario.collect(edit=nothing_but_certificates)
    states = _states(evaluation)
    assert set(states.values()) == {UNKNOWN}, states
    assert "configtemplate source is not configured" in _state(evaluation, "certs-installed").detail
    assert "no cluster configuration source" in _state(evaluation, "sf-cleaned").detail


def test_certificate_missing_on_a_node(scenario: Scenario) -> None:
    scenario.remove("AOS2", "DataEncryption", "new")
    state = _state(scenario.collect(), "certs-installed")
    new_de = scenario.lab.cert("DataEncryption", "new").thumbprint
    assert state.status is PENDING and state.detail == "1 of 44 installations missing or without private key"
    assert state.evidence == (f"AOS2: DataEncryption {new_de[:8]}… missing",)


def test_unread_node_makes_installation_unknown(scenario: Scenario) -> None:
    (scenario.lab.certs_dir / "MR1").rename(scenario.lab.root / "MR1-away")

    def listed_nodes(settings) -> None:  # type: ignore[no-untyped-def]
        settings.sources.certfolder.nodes = ["ORCH1", "ORCH2", "ORCH3", "AOS1", "AOS2", "AOS3", "BI1", "MR1", "SQL1"]

    state = _state(scenario.collect(edit=listed_nodes), "certs-installed")
    assert state.status is UNKNOWN
    assert any(line.startswith("MR1: ") and "not_found" in line for line in state.evidence)


def test_cluster_not_staged(scenario: Scenario) -> None:
    old_sf = scenario.lab.cert("ServiceFabric", "old").thumbprint

    def unstaged(document) -> None:  # type: ignore[no-untyped-def]
        info = document["properties"]["security"]["CertificateInformation"]
        for key in ("ClusterCertificate", "ServerCertificate", "ReverseProxyCertificate"):
            info[key] = {"Thumbprint": old_sf, "X509StoreName": "My"}

    scenario.edit_json(scenario.lab.cluster_config, unstaged)
    evaluation = scenario.collect()
    staged = _state(evaluation, "sf-staged")
    assert staged.status is PENDING and "primary is still the old thumbprint" in staged.detail
    assert _state(evaluation, "sf-upgraded").status is PENDING, "nothing staged, nothing upgraded"


def test_agent_configurations_updated(scenario: Scenario) -> None:
    assert _state(scenario.collect(), "deployment-config-updated").status is PENDING
    scenario.localagent_to("new")
    scenario.share_config_to("new")
    evaluation = scenario.collect()
    assert _state(evaluation, "localagent-updated").status is DONE
    assert _state(evaluation, "deployment-config-updated").status is DONE


def test_cluster_cleaned_up(scenario: Scenario) -> None:
    scenario.clean_cluster()
    evaluation = scenario.collect()
    assert _state(evaluation, "sf-cleaned").status is DONE
    assert _state(evaluation, "sf-staged").status is DONE, "staging is behind it"


def test_roles_not_rotated_do_not_apply(scenario: Scenario) -> None:
    lab = scenario.lab
    for role in ("DataEncryption", "ServiceFabricEncryption", "ServiceFabric", "ServiceFabricClient"):
        scenario.set_template_thumbprint(lab.infrastructure_old, role, lab.cert(role, "new").thumbprint)
    states = _states(scenario.collect())
    for step in ("reencryption-enabled", "reencryption-complete", "credentials-rotated", "sf-staged", "sf-upgraded"):
        assert states[step] is NA, step
    assert states["localagent-updated"] is NA
