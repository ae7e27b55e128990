"""Pre-flight results for the status page, /api/status and `certmon status` (issue 16).

The Service Fabric remediation that applies next is `sf-stage-rotation` until the staged
configuration's upgrade completed (step sf-upgraded), then `sf-cleanup-old-certs` until step
sf-cleaned; none once both are finished. Its preconditions are the pre-flight checks of the
configuration upgrade it would start (remediations.sfpreflight and the checks it shares with
the findings); each is shown as pass, fail or unknown (the evidence to decide is missing) with
its reason. They run once per evaluation, on the publishing thread, with the view: a request
only reads them. Reading them runs no remote call: they use the evaluation's snapshot and the
configured ClusterConfig.json (a local file, read to compare it with the running configuration).
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from daemon.evaluator import Evaluation
    from daemon.settings import Settings
    from remediations.base import Check

log = logging.getLogger(__name__)

#: (step that must be finished before the next one is considered, remediation whose preconditions apply)
NEXT_UPGRADE = (("sf-upgraded", "sf-stage-rotation"), ("sf-cleaned", "sf-cleanup-old-certs"))
PASS, FAIL, UNKNOWN = "pass", "fail", "unknown"


def next_sf_remediation(evaluation: Evaluation) -> tuple[str, str] | None:
    """(step, remediation) of the Service Fabric configuration upgrade that comes next, or None."""
    checklist = evaluation.checklist
    for step, remediation in NEXT_UPGRADE:
        state = checklist.state(step)
        if state is not None and not state.status.satisfied:
            return step, remediation
    return None


def check_result(check: Check) -> str:
    """pass, fail, or unknown when the evidence to decide is missing."""
    if check.ok:
        return PASS
    return FAIL if check.known else UNKNOWN


def preflight_payload(evaluation: Evaluation, settings: Settings) -> dict[str, Any]:
    """The pre-flight checks of the next Service Fabric configuration upgrade, JSON-ready."""
    from daemon.sources.registry import remediation_files
    from remediations.base import RemediationContext
    from remediations.registry import get_remediation

    chosen = next_sf_remediation(evaluation)
    if chosen is None:
        return {"remediation": None, "step": None, "summary": "no Service Fabric configuration upgrade is pending"}
    step, name = chosen
    ctx = RemediationContext(
        environment=settings.environment,
        snapshot=evaluation.snapshot,
        findings=evaluation.findings,
        now=evaluation.evaluated_at,
        files=remediation_files(settings),
    )
    try:
        checks = get_remediation(name).preconditions(ctx)
    except Exception as err:  # noqa: BLE001 - a check that cannot run is shown, the evaluation goes on
        log.warning("pre-flight checks of %s could not run: %s", name, err)
        checks = []
        error = f"the pre-flight checks could not run: {type(err).__name__}: {err}"
    else:
        error = ""
    rows = [{"name": c.name, "result": check_result(c), "reason": c.detail} for c in checks]
    counts = {r: sum(1 for row in rows if row["result"] == r) for r in (PASS, FAIL, UNKNOWN)}
    summary = error or (
        f"{counts[PASS]} pass, {counts[FAIL]} fail, {counts[UNKNOWN]} unknown"
        + (": the upgrade may start" if rows and counts[PASS] == len(rows) else "")
    )
    return {
        "remediation": name,
        "step": step,
        "dry_run": f"certmon remediate {name}",
        "summary": summary,
        "error": error,
        "checks": rows,
    }
