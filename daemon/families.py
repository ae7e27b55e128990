"""Metric families being built for one view: a leaf shared by `daemon.metrics` and `daemon.agentmetrics`."""

from __future__ import annotations

from collections.abc import Iterable

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric


class Families:
    """Gauge families keyed by name, with duplicate label sets dropped."""

    def __init__(self) -> None:
        self._families: dict[str, Metric] = {}
        self._seen: dict[str, set[tuple[str, ...]]] = {}

    def gauge(self, name: str, documentation: str, labels: Iterable[str]) -> GaugeMetricFamily:
        """Create (once) and return a gauge family."""
        family = self._families.get(name)
        if family is None:
            family = GaugeMetricFamily(name, documentation, labels=list(labels))
            self._families[name] = family
            self._seen[name] = set()
        assert isinstance(family, GaugeMetricFamily)
        return family

    def counter(self, name: str, documentation: str, labels: Iterable[str]) -> CounterMetricFamily:
        """Create (once) and return a counter family (name without _total)."""
        family = self._families.get(name)
        if family is None:
            family = CounterMetricFamily(name, documentation, labels=list(labels))
            self._families[name] = family
            self._seen[name] = set()
        assert isinstance(family, CounterMetricFamily)
        return family

    def add(self, family: Metric, values: tuple[str, ...], value: float) -> None:
        """Add a sample unless the same label set is already there."""
        seen = self._seen[family.name]
        if values in seen:
            return
        seen.add(values)
        family.add_metric(list(values), value)  # type: ignore[attr-defined]

    def all(self) -> list[Metric]:
        """The families in creation order."""
        return list(self._families.values())
