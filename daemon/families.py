"""Metric families being built for one view: a leaf shared by `daemon.metrics` and `daemon.agentmetrics`."""

from __future__ import annotations

from array import array
from collections.abc import Iterable

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric

from daemon.compactmetrics import CompactSamples


class Families:
    """Gauge families keyed by name, with duplicate label sets dropped."""

    def __init__(self) -> None:
        self._families: dict[str, Metric] = {}
        self._seen: dict[str, set[tuple[str, ...]]] = {}
        # Series as label values and values until `all()`: see daemon.compactmetrics.
        self._labels: dict[str, list[tuple[str, ...]]] = {}
        self._values: dict[str, array[float]] = {}
        self._labelnames: dict[str, list[str]] = {}

    def gauge(self, name: str, documentation: str, labels: Iterable[str]) -> GaugeMetricFamily:
        """Create (once) and return a gauge family."""
        family = self._families.get(name)
        if family is None:
            family = GaugeMetricFamily(name, documentation, labels=list(labels))
            self._families[name] = family
            self._seen[name] = set()
            self._labelnames[name] = list(labels)
        assert isinstance(family, GaugeMetricFamily)
        return family

    def counter(self, name: str, documentation: str, labels: Iterable[str]) -> CounterMetricFamily:
        """Create (once) and return a counter family (name without _total)."""
        family = self._families.get(name)
        if family is None:
            family = CounterMetricFamily(name, documentation, labels=list(labels))
            self._families[name] = family
            self._seen[name] = set()
            self._labelnames[name] = list(labels)
        assert isinstance(family, CounterMetricFamily)
        return family

    def add(self, family: Metric, values: tuple[str, ...], value: float) -> None:
        """Add a sample unless the same label set is already there."""
        seen = self._seen[family.name]
        if values in seen:
            return
        seen.add(values)
        labels = self._labels.get(family.name)
        if labels is None:
            labels = self._labels[family.name] = []
            self._values[family.name] = array("d")
        labels.append(values)
        self._values[family.name].append(value)

    def all(self) -> list[Metric]:
        """The families in creation order."""
        for name, family in self._families.items():
            labels = self._labels.get(name)
            if labels:
                sample_name = name + "_total" if isinstance(family, CounterMetricFamily) else name
                family.samples = CompactSamples(  # type: ignore[assignment]
                    sample_name, self._labelnames[name], family.samples, labels, self._values[name]
                )
        self._labels, self._values, self._seen = {}, {}, {}
        return list(self._families.values())
