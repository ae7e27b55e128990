"""Families kept as compact rows (daemon.compactmetrics) render byte-for-byte like prometheus_client."""

from __future__ import annotations

from collections.abc import Sequence

from prometheus_client.core import Metric
from prometheus_client.exposition import generate_latest
from prometheus_client.openmetrics.exposition import generate_latest as openmetrics_latest

from daemon.compactmetrics import CompactSamples
from daemon.exposition import render_exposition
from daemon.families import Families


class _Fixed:
    def __init__(self, families: Sequence[Metric]) -> None:
        self.families = families

    def collect(self) -> Sequence[Metric]:
        return self.families


def test_compact_rows_render_like_prometheus_client() -> None:
    out = Families()
    gauge = out.gauge("odd_gauge", 'Help with "quotes".', ["b", "a"])  # label names not in sorted order
    out.add(gauge, ('quote " here', "back\\slash\nnew line"), 1.0)
    out.add(gauge, ("ünïcödé", ""), float("nan"))
    out.add(gauge, ("inf", "x"), float("inf"))
    out.add(gauge, ("big", "x"), 1764000000.0)
    out.add(gauge, ("small", "x"), 1e-9)
    out.add(gauge, ("negative", "x"), -17534000000.25)
    out.add(gauge, ("big", "x"), 2.0)  # a duplicate label set is dropped
    counter = out.counter("odd_errors", "A counter.", ["z", "a"])
    out.add(counter, ("2", "1"), 3.0)
    bare = out.gauge("odd_bare", "No labels.", [])
    out.add(bare, (), 7.0)
    out.gauge("odd_empty", "No samples.", ["a"])
    families = out.all()
    assert isinstance(families[0].samples, CompactSamples) and len(families[0].samples) == 6
    # Label tuples beside an array of doubles, read back as (labels, value) pairs.
    rows = families[0].samples.rows
    assert rows[0] == (('quote " here', "back\\slash\nnew line"), 1.0) and rows[-1] == (
        ("negative", "x"),
        -17534000000.25,
    )
    assert [value for _, value in rows][3:5] == [1764000000.0, 1e-9] and len(rows[1:3]) == 2
    fixed = _Fixed(families)
    rendered = render_exposition(families)
    assert rendered.text == generate_latest(fixed)  # type: ignore[arg-type]
    assert rendered.openmetrics == openmetrics_latest(fixed)  # type: ignore[arg-type]
