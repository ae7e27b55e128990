"""The daemon side of the remediation framework, shared by `certmon remediate`, the API and the demo.

It builds the `RemediationContext` from the latest collection and evaluation, wires the audit to
the JSON-lines file and the state store, and gives the engine a `recollect` callback that re-runs
sources and re-evaluates. It reads the daemon through `daemon.view.RunningDaemon`, never `daemon.app`.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from daemon.state import StateStore
    from daemon.view import RunningDaemon as Daemon
    from remediations.audit import Auditor, AuditRecord, AuditSink
    from remediations.base import RemediationContext
    from remediations.engine import Engine

DEFAULT_WAIT_SECONDS = 30.0


def store_sink(store: StateStore) -> AuditSink:
    """An audit sink writing to the state store's audit table."""

    def sink(record: AuditRecord) -> None:
        data = record.to_dict()
        detail = {k: data[k] for k in ("run_id", "environment", "message", "plan", "backups", "detail")}
        store.add_audit(
            at=record.at,
            actor=data["actor"],
            host=data["host"],
            remediation=data["remediation"],
            target=data["target"],
            mode=data["mode"],
            outcome=data["outcome"],
            detail=detail,
        )

    return sink


def remediation_auditor(daemon: Daemon) -> Auditor:
    """The daemon's audit: the JSON-lines file in the data directory and the state store."""
    from remediations.audit import AUDIT_FILE, Auditor, JsonlAuditLog

    return Auditor([JsonlAuditLog(daemon.settings.data_dir / AUDIT_FILE), store_sink(daemon.store)])


def remediation_engine(daemon: Daemon, lock_timeout: float = DEFAULT_WAIT_SECONDS, actor: str | None = None) -> Engine:
    """The engine for the daemon's environment: audit to the JSON-lines file and the state store."""
    from remediations.engine import Engine

    settings = daemon.settings
    auditor = remediation_auditor(daemon)
    return Engine(
        data_dir=settings.data_dir,
        environment=settings.environment,
        auditor=auditor,
        actor=actor,
        clock=daemon.clock,
        lock_timeout=lock_timeout,
    )


def remediation_options(daemon: Daemon, progress: Callable[[str], None] | None = None) -> dict[str, Any]:
    """What remediations need beyond files: what each source offers (daemon.sources) and a progress callback."""
    from daemon.sources.registry import remediation_options as source_options
    from remediations.sfgateway import PROGRESS_OPTION

    options = source_options(daemon.settings, daemon.collectors, daemon.clock)
    if progress is not None:
        options[PROGRESS_OPTION] = progress
    if daemon.settings.rules.agent_updates_without_cluster_evidence:
        from remediations.sfgates import OVERRIDE_OPTION

        options[OVERRIDE_OPTION] = True
    return options


def remediation_context(daemon: Daemon, progress: Callable[[str], None] | None = None) -> RemediationContext:
    """The latest evaluation, the configured file locations, and a re-collect callback."""
    from daemon.sources.registry import remediation_files
    from remediations.base import Recollection, RemediationContext

    files = remediation_files(daemon.settings)

    def recollect(names: Sequence[str]) -> Recollection:
        for name in names:
            if name in daemon.collectors:
                daemon.runner.run_source(name)
        view = daemon.publish()
        return Recollection(view.evaluation.snapshot, view.evaluation.findings)

    evaluation = daemon.view.evaluation
    return RemediationContext(
        environment=daemon.settings.environment,
        snapshot=evaluation.snapshot,
        findings=evaluation.findings,
        now=evaluation.evaluated_at,
        files=files,
        options=remediation_options(daemon, progress),
        recollect=recollect,
    )
