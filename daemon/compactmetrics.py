"""Metric samples kept compact between scrapes: label values as one tuple, Samples made while rendering.

A prometheus_client `Sample` carries a dictionary of its labels; 150,000 certificate series
(50,000 certificates in one store) kept that way cost about 100 MiB between evaluations. The
families keep each series as (label values, value) instead and hand the exposition code
ordinary `Sample`s one at a time, so a scrape's working set is one line, not all of them.
The values are one array of doubles beside the list of label tuples (a (labels, value) tuple
and a float object per series cost 80 bytes more: 12 MiB at 150,000 series, twice while a
publish holds the old view and the new one).
"""

from __future__ import annotations

from array import array
from collections.abc import Iterator, Sequence
from typing import overload

from prometheus_client.samples import Sample


class Rows(Sequence[tuple[tuple[str, ...], float]]):
    """(label values, value) pairs read from the parallel list and array."""

    __slots__ = ("_labels", "_values")

    def __init__(self, labels: list[tuple[str, ...]], values: array[float]) -> None:
        self._labels = labels
        self._values = values

    def __iter__(self) -> Iterator[tuple[tuple[str, ...], float]]:
        return zip(self._labels, self._values, strict=True)

    def __len__(self) -> int:
        return len(self._labels)

    @overload
    def __getitem__(self, index: int) -> tuple[tuple[str, ...], float]: ...

    @overload
    def __getitem__(self, index: slice) -> Sequence[tuple[tuple[str, ...], float]]: ...

    def __getitem__(
        self, index: int | slice
    ) -> tuple[tuple[str, ...], float] | Sequence[tuple[tuple[str, ...], float]]:
        if isinstance(index, slice):
            return list(zip(self._labels[index], self._values[index], strict=True))
        return self._labels[index], self._values[index]


class CompactSamples(Sequence[Sample]):
    """The samples of one family: any built the usual way, then the compact rows."""

    __slots__ = ("_labelnames", "_name", "_rows", "_samples")

    def __init__(
        self,
        name: str,
        labelnames: Sequence[str],
        samples: Sequence[Sample],
        labels: list[tuple[str, ...]],
        values: array[float],
    ) -> None:
        if len(labels) != len(values):
            raise ValueError(f"{len(labels)} label sets for {len(values)} values")
        self._name = name
        self._labelnames = tuple(labelnames)
        self._samples = tuple(samples)
        self._rows = Rows(labels, values)

    @property
    def name(self) -> str:
        """The sample name of every compact row."""
        return self._name

    @property
    def labelnames(self) -> tuple[str, ...]:
        """The label names, in the order of each row's values."""
        return self._labelnames

    @property
    def ordinary(self) -> tuple[Sample, ...]:
        """The samples built the usual way, before the rows."""
        return self._samples

    @property
    def rows(self) -> Rows:
        """The compact rows: (label values, value)."""
        return self._rows

    def _sample(self, row: tuple[tuple[str, ...], float]) -> Sample:
        values, value = row
        return Sample(self._name, dict(zip(self._labelnames, values, strict=True)), value)

    def __iter__(self) -> Iterator[Sample]:
        yield from self._samples
        for row in self._rows:
            yield self._sample(row)

    def __len__(self) -> int:
        return len(self._samples) + len(self._rows)

    @overload
    def __getitem__(self, index: int) -> Sample: ...

    @overload
    def __getitem__(self, index: slice) -> Sequence[Sample]: ...

    def __getitem__(self, index: int | slice) -> Sample | Sequence[Sample]:
        if isinstance(index, slice):
            return [self[i] for i in range(*index.indices(len(self)))]
        if index < 0:
            index += len(self)
        if index < len(self._samples):
            return self._samples[index]
        return self._sample(self._rows[index - len(self._samples)])

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Sequence) and list(self) == list(other)

    def __hash__(self) -> int:
        return id(self)
