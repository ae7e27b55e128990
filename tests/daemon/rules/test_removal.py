"""Old certificates removed too early: data encryption (history and topology) and any still-named one."""

from __future__ import annotations

from datetime import timedelta

from collectors.model import Severity
from tests.daemon.scenarios import Scenario, findings

RULE = "data-encryption-old-cert-removed-early"


def test_old_data_encryption_certificate_present_everywhere_is_fine(scenario: Scenario) -> None:
    evaluation = scenario.collect()
    assert findings(evaluation, RULE) == [] and findings(evaluation, "old-cert-removed-early") == []


def test_old_data_encryption_missing_on_an_aos_node(scenario: Scenario) -> None:
    scenario.remove("AOS2", "DataEncryption", "old")
    (finding,) = findings(scenario.collect(), RULE)
    old = scenario.lab.cert("DataEncryption", "old").thumbprint
    assert (finding.node, finding.thumbprint, finding.role) == ("AOS2", old, "DataEncryption")
    assert finding.severity is Severity.CRITICAL and finding.step == "reencryption-complete"
    assert "missing on AOS2 (AOS node)" in finding.message
    assert "re-encryption is not complete (still encrypted with the old certificate: lab-encrypted-fields 1200)" in (
        finding.message
    )


def test_old_data_encryption_may_go_once_reencryption_is_complete(scenario: Scenario) -> None:
    scenario.reencrypt_all()
    scenario.remove("AOS2", "DataEncryption", "old")
    assert findings(scenario.collect(), RULE) == []


def test_without_sql_evidence_reencryption_is_not_known_complete(scenario: Scenario) -> None:
    scenario.remove("AOS2", "DataEncryption", "old")

    def no_sql(settings) -> None:  # type: ignore[no-untyped-def]
        settings.sources.sql.enabled = False

    (finding,) = findings(scenario.collect(edit=no_sql), RULE)
    assert "not known to be complete" in finding.message and "AXDB has not been read" in finding.message


def test_removal_survives_a_daemon_restart(scenario: Scenario) -> None:
    """Seen on BI1 by one daemon, gone when a new daemon (same state store) looks: still raised."""
    scenario.install("BI1", "DataEncryption", "old")
    first = scenario.collect()
    assert findings(first, RULE) == []
    scenario.remove("BI1", "DataEncryption", "old")
    later = scenario.now + timedelta(hours=6)
    (finding,) = findings(scenario.collect(at=later), RULE)
    assert finding.node == "BI1" and finding.source == "certfolder" and finding.target == "BI1"
    assert f"removed from BI1 (seen there until {scenario.now:%Y-%m-%d %H:%M}Z" in finding.message
    assert f"gone since {later:%Y-%m-%d %H:%M}Z" in finding.message
    # The history keeps it raised on every later evaluation, not only the one that saw it go.
    assert [f.node for f in findings(scenario.collect(at=later + timedelta(days=1)), RULE)] == ["BI1"]


def test_without_that_history_a_non_aos_node_is_not_evidence(scenario: Scenario) -> None:
    """The neighbour of the restart test: the same files, but a state store that never saw BI1 hold it."""
    scenario.install("BI1", "DataEncryption", "old")
    scenario.collect()
    scenario.remove("BI1", "DataEncryption", "old")
    fresh = scenario.lab.root / "other-data"
    assert findings(scenario.collect(data_dir=fresh), RULE) == []
    assert [f.node for f in findings(scenario.collect(), RULE)] == ["BI1"]


def test_nothing_to_protect_without_a_rotation_of_data_encryption(scenario: Scenario) -> None:
    # InfrastructureOld names the same DataEncryption certificate: nothing is being retired.
    new = scenario.lab.cert("DataEncryption", "new").thumbprint
    scenario.set_template_thumbprint(scenario.lab.infrastructure_old, "DataEncryption", new)
    scenario.remove("AOS2", "DataEncryption", "old")
    assert findings(scenario.collect(), RULE) == []


def test_old_service_fabric_certificate_still_named_by_the_cluster(scenario: Scenario) -> None:
    scenario.remove("MR1", "ServiceFabric", "old")
    evaluation = scenario.collect()
    (finding,) = findings(evaluation, "old-cert-removed-early")
    old = scenario.lab.cert("ServiceFabric", "old").thumbprint
    assert (finding.node, finding.thumbprint, finding.role, finding.severity) == (
        "MR1",
        old,
        "ServiceFabric",
        Severity.CRITICAL,
    )
    assert "ThumbprintSecondary" in finding.message and finding.step == "sf-cleaned"


def test_old_client_certificate_still_used_by_the_local_agent(scenario: Scenario) -> None:
    scenario.clean_cluster()
    scenario.remove("ORCH2", "ServiceFabricClient", "old")
    (finding,) = findings(scenario.collect(), "old-cert-removed-early")
    assert (finding.node, finding.role, finding.step) == ("ORCH2", "ServiceFabricClient", "localagent-updated")
    assert "localagent-config.json" in finding.message


def test_removing_old_certificates_nobody_names_is_fine(scenario: Scenario) -> None:
    scenario.clean_cluster()
    scenario.localagent_to("new")
    scenario.share_config_to("new")
    for node in ("AOS1", "ORCH1", "BI1", "MR1"):
        scenario.remove(node, "ServiceFabric", "old")
        scenario.remove(node, "ServiceFabricClient", "old")
    assert findings(scenario.collect(), "old-cert-removed-early") == []
