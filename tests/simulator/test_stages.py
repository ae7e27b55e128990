"""The demo's rotation stages: reached by walking the runbook, each showing what the runbook says."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from daemon.evaluator import Evaluation
from daemon.nextaction import next_action
from daemon.rotation.model import StepStatus
from simulator.demo import Demo, DemoOptions
from simulator.stages import KEY_ACL_ACCOUNT, KEY_ACL_NODE, REMOVED_EARLY_NODE, StageError, path_between

# The runbook steps (DESIGN section 2) done at each stage. Before the rotation there is no
# secondary thumbprint to clean up; from staged until done there is.
_STAGED = {"scripts-updated", "certs-generated", "certs-installed", "axdb-backed-up", "sql-adfs-checked"}
_UPGRADED = _STAGED | {"sf-staged", "sf-upgraded"}
DONE_AT = {
    "before": {"sql-adfs-checked", "sf-cleaned"},
    "staged": _STAGED,
    "upgraded": _UPGRADED,
    "re-encrypting": _UPGRADED
    | {"localagent-updated", "deployment-config-updated", "credentials-rotated", "lcs-settings-applied"}
    | {"reencryption-enabled"},
}
REMOVED_RULES = {"data-encryption-old-cert-removed-early", "old-cert-removed-early"}
# The Service Fabric configuration upgrade whose pre-flight checks the status page shows at each stage.
PREFLIGHT_AT = {
    "before": "sf-stage-rotation",
    "staged": "sf-stage-rotation",
    "upgraded": "sf-cleanup-old-certs",
    "re-encrypting": "sf-cleanup-old-certs",
}


@pytest.fixture(scope="module")
def walk(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Demo]:
    """One demo from `before`, its time 600x, walked stage by stage by the tests below (in file order)."""
    root = tmp_path_factory.mktemp("walk") / "demo"
    with Demo(DemoOptions(directory=root, port=0, stage="before", speed=600), echo=lambda text: None) as demo:
        yield demo


def _at(demo: Demo, stage: str) -> Evaluation:
    assert demo.rotation is not None
    demo.rotation.move_to(stage)
    assert demo.rotation.stage == stage
    return demo.daemon.collect_once().evaluation


def _statuses(evaluation: Evaluation) -> dict[str, StepStatus]:
    return {s.step: s.status for s in evaluation.checklist.steps}


def test_path_between_walks_forward_with_one_detour() -> None:
    assert path_between("before", "re-encrypting") == ["staged", "upgraded", "re-encrypting"]
    assert path_between("re-encrypting", "done") == ["done"]
    assert path_between("staged", "removed-early") == ["upgraded", "re-encrypting", "removed-early"]
    assert path_between("removed-early", "done") == ["re-encrypting", "done"]
    assert path_between("removed-early", "re-encrypting") == ["re-encrypting"]
    assert path_between("done", "done") == []
    assert path_between("before", "key-acl-missing") == ["staged", "key-acl-missing"]
    assert path_between("key-acl-missing", "staged") == ["staged"]
    assert path_between("key-acl-missing", "re-encrypting") == ["staged", "upgraded", "re-encrypting"]
    assert path_between("staged", "re-encrypting") == ["upgraded", "re-encrypting"], "the detour is not walked"


@pytest.mark.parametrize(
    ("current", "target"),
    [("done", "staged"), ("upgraded", "before"), ("done", "removed-early"), ("upgraded", "key-acl-missing")],
)
def test_a_rotation_does_not_run_backwards(current: str, target: str) -> None:
    with pytest.raises(StageError, match=f"does not go back from {current} to {target}"):
        path_between(current, target)


def test_an_unknown_stage_is_named() -> None:
    with pytest.raises(StageError, match="unknown stage 'halfway'"):
        path_between("before", "halfway")


@pytest.mark.parametrize("stage", ["before", "staged", "upgraded", "re-encrypting"])
def test_each_stage_shows_the_runbook_steps_done_so_far(walk: Demo, stage: str) -> None:
    evaluation = _at(walk, stage)
    statuses = _statuses(evaluation)
    done = {step for step, status in statuses.items() if status is StepStatus.DONE}
    assert done == DONE_AT[stage], statuses
    assert not REMOVED_RULES & {f.rule for f in evaluation.findings}
    if stage != "before":
        # Until re-encryption is complete the old DataEncryption certificate must stay.
        old = {c.role: c for c in evaluation.checklist.old_certificates}
        assert not old["DataEncryption"].safe_to_remove
    action = next_action(evaluation)
    first_open = next(s for s in evaluation.checklist.steps if s.status is StepStatus.PENDING)
    if stage == "before":  # certificates inside their critical window and no rotation yet: start one
        assert (action["kind"], action["step"]) == ("critical-finding", "certs-generated"), action
    elif action["kind"] == "pending-step":
        assert action["step"] == first_open.step, action
    else:  # mid-rotation, the old generation's expiry window is the checklist's business, not the next action
        assert action["kind"] == "critical-finding" and not action["what"].startswith("cert-expiry"), action
    # Each pending step names the remediations that complete it, with their dry-run commands.
    for remediation in action["remediations"]:
        assert remediation["dry_run"] == f"certmon remediate {remediation['name']}"
    # The pre-flight checks of the next configuration upgrade, computed with the view.
    preflight = walk.daemon.view.preflight
    assert preflight["remediation"] == PREFLIGHT_AT[stage], preflight
    results = {c["name"]: c["result"] for c in preflight["checks"]}
    if stage == "staged":  # the staged file, the running 2.0.0 and the nodes: every check passes, with its reason
        assert set(results.values()) == {"pass"}, preflight
        assert {"configuration version increases", "no in-place swap of a primary", "no upgrade in progress"} <= set(
            results
        )
        reasons = {c["name"]: c["reason"] for c in preflight["checks"]}
        assert reasons["configuration version increases"] == "2.0.0 -> 2.0.1"
        assert preflight["summary"] == f"{len(results)} pass, 0 fail, 0 unknown: the upgrade may start"
    if stage == "before":  # nothing staged yet: the old admin client cannot be told apart without InfrastructureOld
        assert results["rotation thumbprints known"] == "unknown", preflight
    if stage == "upgraded":
        assert results["staged configuration upgrade completed"] == "pass", preflight


def test_removed_early_raises_the_critical_finding_on_the_node(walk: Demo) -> None:
    evaluation = _at(walk, "removed-early")
    assert walk.lab is not None
    old = walk.lab.cert("DataEncryption", "old").thumbprint
    removed = [f for f in evaluation.findings if f.rule == "data-encryption-old-cert-removed-early"]
    assert [(f.severity.value, f.node, f.thumbprint) for f in removed] == [("critical", REMOVED_EARLY_NODE, old)]
    assert _statuses(evaluation)["reencryption-complete"] is StepStatus.PENDING
    action = next_action(evaluation)
    assert (action["kind"], action["step"]) == ("critical-finding", "reencryption-complete")
    assert action["what"].startswith("data-encryption-old-cert-removed-early: "), "the damage comes first"
    # The batch job cannot decrypt on that node: its runs end in error until the certificate is back.
    assert walk.rotation is not None and walk.rotation.job is not None
    assert walk.rotation.job.blocker() == f"the old DataEncryption certificate is missing on {REMOVED_EARLY_NODE}"


def test_the_remedy_clears_it(walk: Demo) -> None:
    evaluation = _at(walk, "re-encrypting")
    assert not REMOVED_RULES & {f.rule for f in evaluation.findings}
    assert walk.rotation is not None and walk.rotation.job is not None
    assert walk.rotation.job.blocker() is None


def test_done_completes_the_checklist(walk: Demo) -> None:
    evaluation = _at(walk, "done")
    statuses = _statuses(evaluation)
    assert all(status is StepStatus.DONE for status in statuses.values()), statuses
    assert all(c.safe_to_remove for c in evaluation.checklist.old_certificates)
    rules = {f.rule for f in evaluation.findings}
    assert not REMOVED_RULES & rules
    assert "sf-secondary-lingering" not in rules and "reencryption-not-enabled" not in rules
    assert walk.rotation is not None and walk.rotation.job is not None
    assert walk.rotation.job.remaining() == 0
    # Every step is done; what is left is the lab's deliberately expired TLS endpoint, outside the rotation.
    action = next_action(evaluation)
    assert (action["kind"], action["step"]) == ("critical-finding", "certs-generated"), action
    assert action["what"].startswith("cert-expired: certificate expired.contoso.lab"), action
    assert walk.lab is not None
    assert not list(walk.lab.certs_dir.glob("*/*-old.pfx"))
    assert walk.daemon.view.preflight == {
        "remediation": None,
        "step": None,
        "summary": "no Service Fabric configuration upgrade is pending",
    }


def test_a_demo_starts_directly_at_removed_early(tmp_path: Path) -> None:
    options = DemoOptions(directory=tmp_path / "demo", port=0, stage="removed-early", speed=600, run=False)
    with Demo(options, echo=lambda text: None) as demo:
        assert demo.lab is not None and demo.lab.stage == "removed-early"
        assert demo.control is None
        rules = {f.rule for f in demo.daemon.collect_once().evaluation.findings}
        assert "data-encryption-old-cert-removed-early" in rules


def test_key_acl_missing_raises_the_finding_before_the_switch_and_the_grant_clears_it(tmp_path: Path) -> None:
    options = DemoOptions(directory=tmp_path / "demo", port=0, stage="key-acl-missing", speed=600, run=False)
    with Demo(options, echo=lambda text: None) as demo:
        assert demo.lab is not None and demo.rotation is not None and demo.lab.stage == "key-acl-missing"
        evaluation = demo.daemon.collect_once().evaluation
        new = demo.lab.cert("DataEncryption", "new").thumbprint
        missing = [f for f in evaluation.findings if f.rule == "private-key-acl-missing"]
        assert [(f.severity.value, f.node, f.role, f.thumbprint) for f in missing] == [
            ("critical", KEY_ACL_NODE, "DataEncryption", new)
        ]
        assert f"{KEY_ACL_ACCOUNT} cannot read the private key" in missing[0].message
        # The new certificates are not ready for the switch while their service cannot open the key.
        assert _statuses(evaluation)["certs-installed"] is StepStatus.PENDING
        assert not [f for f in evaluation.findings if f.rule == "private-key-acl-unverified"]
        # The remedy: Read granted again (back to staged); the finding clears and the step is done.
        demo.rotation.move_to("staged")
        evaluation = demo.daemon.collect_once().evaluation
        assert not [f for f in evaluation.findings if f.rule.startswith("private-key-acl")]
        assert _statuses(evaluation)["certs-installed"] is StepStatus.DONE
