"""Metric samples kept compact between scrapes: label values as one tuple, Samples made while rendering.

A prometheus_client `Sample` carries a dictionary of its labels; 150,000 certificate series
(50,000 certificates in one store) kept that way cost about 100 MiB between evaluations. The
families keep each series as (label values, value) instead and hand the exposition code
ordinary `Sample`s one at a time, so a scrape's working set is one line, not all of them.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import overload

from prometheus_client.samples import Sample


class CompactSamples(Sequence[Sample]):
    """The samples of one family: any built the usual way, then the compact rows."""

    __slots__ = ("_labelnames", "_name", "_rows", "_samples")

    def __init__(
        self,
        name: str,
        labelnames: Sequence[str],
        samples: Sequence[Sample],
        rows: list[tuple[tuple[str, ...], float]],
    ) -> None:
        self._name = name
        self._labelnames = tuple(labelnames)
        self._samples = tuple(samples)
        self._rows = rows

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
    def rows(self) -> Sequence[tuple[tuple[str, ...], float]]:
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
