"""Shared types of the running daemon: the published `View` and what other modules read of the daemon.

A leaf of the daemon's wiring: `app` implements `RunningDaemon`; the API, the status cache, the scheduler and
the remediation wiring name only this protocol, so none of them imports `app` and `app` may import them.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

from prometheus_client.core import Metric

from collectors.base import Collector
from daemon.evaluator import Evaluation
from daemon.exposition import Exposition
from daemon.runner import Clock, Runner
from daemon.settings import Settings
from daemon.state import StateStore


@dataclass(frozen=True)
class View:
    """The latest evaluation, the metric families built from it and their rendered exposition."""

    evaluation: Evaluation
    families: tuple[Metric, ...]
    #: /metrics bodies, rendered on the publishing thread so a scrape only sends bytes
    exposition: Exposition
    #: the next Service Fabric upgrade's pre-flight checks (daemon.preflight), also run on the publishing thread
    preflight: dict[str, Any] = field(default_factory=dict)


class RunningDaemon(Protocol):
    """What the API, the status cache, the scheduler and the remediations use of one running daemon."""

    settings: Settings
    clock: Clock
    store: StateStore
    runner: Runner
    view: View
    on_progress: Callable[[str, str, bool], None] | None

    @property
    def collectors(self) -> dict[str, Collector]:
        """Collectors by source name."""

    def publish(self) -> View:
        """Re-evaluate the latest results and swap in the new view."""

    def collect_source(self, name: str) -> None:
        """One scheduled cycle of one source, then a new view."""
