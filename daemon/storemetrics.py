"""The state store's health as metrics: up, errors by operation and kind, what waits in memory."""

from __future__ import annotations

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric

from daemon.statefaults import StoreStatus


def store_families(environment: str, status: StoreStatus) -> list[Metric]:
    """certmon_state_store_up, _errors_total, _pending, _down_since_timestamp_seconds."""
    up = GaugeMetricFamily(
        "certmon_state_store_up",
        "1 while the state store (history, audit, progress) can be written; 0 while collection runs in memory only.",
        labels=["environment", "fault"],
    )
    up.add_metric([environment, str(status.fault or "")], 1.0 if status.up else 0.0)
    errors = CounterMetricFamily(
        "certmon_state_store_errors",
        "State store operations that failed, by operation and kind (disk-full, read-only, corrupt, missing...).",
        labels=["environment", "operation", "fault"],
    )
    for (operation, fault), count in sorted(status.errors_total.items()):
        errors.add_metric([environment, operation, fault], float(count))
    pending = GaugeMetricFamily(
        "certmon_state_store_pending",
        "Location collections and progress samples kept in memory until the state store takes them.",
        labels=["environment"],
    )
    pending.add_metric([environment], float(status.pending))
    families: list[Metric] = [up, errors, pending]
    if status.since is not None:
        since = GaugeMetricFamily(
            "certmon_state_store_down_since_timestamp_seconds",
            "When the state store started failing, Unix time.",
            labels=["environment"],
        )
        since.add_metric([environment], status.since.timestamp())
        families.append(since)
    return families
