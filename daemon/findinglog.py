"""Findings raised and cleared, in the service log: a Windows event log or journal shows when a critical appears."""

from __future__ import annotations

import logging
from collections.abc import Iterable

from collectors.model import Finding, Severity

log = logging.getLogger("certmon.findings")

#: Findings named one per line in one evaluation; the rest are counted, so a first evaluation of a
#: large estate (thousands of expiry warnings) cannot flood the log.
MAX_LINES_PER_EVALUATION = 50

_LEVEL = {Severity.CRITICAL: logging.ERROR, Severity.WARNING: logging.WARNING, Severity.INFO: logging.INFO}


class FindingLog:
    """Remembers the active findings and logs the difference after each evaluation."""

    def __init__(self, limit: int = MAX_LINES_PER_EVALUATION) -> None:
        self._active: dict[tuple[str, ...], Finding] = {}
        self._limit = limit

    def update(self, findings: Iterable[Finding]) -> tuple[int, int]:
        """Log the findings raised and cleared since the last call; returns (raised, cleared)."""
        current: dict[tuple[str, ...], Finding] = {f.key(): f for f in findings}
        raised = [f for key, f in current.items() if key not in self._active]
        cleared = [f for key, f in self._active.items() if key not in current]
        self._active = current
        lines = 0
        for finding in raised:
            if lines < self._limit:
                log.log(_LEVEL.get(finding.severity, logging.INFO), "finding raised: %s", _describe(finding))
                lines += 1
        for finding in cleared:
            if lines < self._limit:
                log.info("finding cleared: %s", _describe(finding))
                lines += 1
        unnamed = len(raised) + len(cleared) - lines
        if unnamed > 0:
            log.warning("%d more findings raised or cleared (see certmon status)", unnamed)
        return len(raised), len(cleared)


def _describe(finding: Finding) -> str:
    where = " ".join(
        f"{name}={value}"
        for name, value in (
            ("role", finding.role),
            ("thumbprint", finding.thumbprint),
            ("node", finding.node),
            ("source", finding.source),
            ("target", finding.target),
        )
        if value
    )
    return f"{finding.rule} [{finding.severity}] {where}: {finding.message}".replace(" :", ":")
