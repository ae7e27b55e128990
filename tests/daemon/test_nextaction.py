"""The next action when certmon knows nothing, and the remediations each step names."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

from collectors.model import Snapshot
from daemon.evaluator import evaluate
from daemon.nextaction import next_action, remediations_for_step
from daemon.rotation import STEPS
from daemon.settings import Settings
from remediations.registry import REMEDIATIONS


def test_without_evidence_the_next_action_says_what_certmon_cannot_decide(now: datetime, tmp_path: Path) -> None:
    """Blind is never green: no source gives an unknown step, not "nothing to do"."""
    evaluation = evaluate(Snapshot("lab", now, {}), [], now, Settings(data_dir=tmp_path))
    action = next_action(evaluation)
    assert action["kind"] == "unknown-step" and action["step"] == STEPS[0].id
    assert action["what"].startswith("certmon cannot decide")


def test_every_remediation_is_named_by_the_step_it_completes() -> None:
    named = {name for step in STEPS for name in remediations_for_step(step.id)}
    assert named == set(REMEDIATIONS), "a remediation whose step is not a checklist step is never offered"
    assert remediations_for_step("sf-cleaned") == ["sf-cleanup-old-certs"]
