"""Re-encryption pace: rate over whole days, ETA, stall, and the recorded history through the collector."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from collectors.base import Deadline
from collectors.sql import AxdbOptions, Probe, SqlCollector
from collectors.sql.axdb import AxdbFacts
from collectors.sql.progress import MemoryProgressHistory, RatePolicy, estimate
from daemon.state import StateStore
from simulator.axdb import LAB_PROBE_SQL
from tests.collectors.sql.conftest import Databases

NOW = datetime(2026, 11, 27, 12, 0, tzinfo=UTC)
POLICY = RatePolicy()


def days_ago(days: float) -> datetime:
    return NOW - timedelta(days=days)


def test_rate_and_eta_over_the_window() -> None:
    # 1,000 left five days ago, 100 re-encrypted per day since (the job runs two hours a day).
    history = [(days_ago(d), 1000.0 - 100 * (5 - d), 2000.0) for d in (5, 4, 3, 2, 1)]
    result = estimate("fields", history, (500.0, 2000.0), NOW, POLICY)
    assert result.rate_per_hour == pytest.approx(100 / 24)
    assert result.eta == NOW + timedelta(days=5)
    assert result.rate_since == days_ago(5)
    assert result.ratio == pytest.approx(0.75)
    assert result.samples == 6 and not result.stalled and not result.complete


def test_no_rate_from_less_than_a_day() -> None:
    # Inside one two-hour run the pace is twelve times the daily one: not a rate to plan with.
    history = [(NOW - timedelta(hours=1), 1000.0, None)]
    result = estimate("fields", history, (900.0, None), NOW, POLICY)
    assert result.rate_per_hour is None and result.eta is None
    assert result.ratio is None and result.last_progress_at == NOW


def test_only_the_window_counts() -> None:
    # Fast a month ago, slow in the last week: the ETA follows the recent pace.
    history = [(days_ago(30), 10_000.0, None), (days_ago(7), 1_700.0, None)]
    result = estimate("fields", history, (1_000.0, None), NOW, POLICY)
    assert result.rate_per_hour == pytest.approx(700 / (7 * 24))
    assert result.eta == NOW + timedelta(days=10)


def test_stalled_after_two_days_without_progress() -> None:
    history = [(days_ago(4), 1000.0, None), (days_ago(3), 800.0, None), (days_ago(1), 800.0, None)]
    result = estimate("fields", history, (800.0, None), NOW, POLICY)
    assert result.last_progress_at == days_ago(3)
    assert result.stalled
    assert result.rate_per_hour == pytest.approx(200 / (4 * 24))  # still a pace over the window


def test_not_stalled_without_enough_history() -> None:
    result = estimate("fields", [(days_ago(1), 800.0, None)], (800.0, None), NOW, POLICY)
    assert not result.stalled and result.last_progress_at is None


def test_complete_is_never_stalled() -> None:
    history = [(days_ago(5), 0.0, 10.0)]
    result = estimate("fields", history, (0.0, 10.0), NOW, POLICY)
    assert result.complete and not result.stalled and result.eta is None and result.ratio == 1.0


def test_going_backwards_gives_no_eta() -> None:
    history = [(days_ago(3), 100.0, None)]
    result = estimate("fields", history, (150.0, None), NOW, POLICY)
    assert result.rate_per_hour == 0.0 and result.eta is None


def test_memory_history_orders_and_filters() -> None:
    history = MemoryProgressHistory()
    history.add_progress("p", days_ago(1), 5, None)
    history.add_progress("p", days_ago(3), 9, 10)
    history.add_progress("q", days_ago(2), 1, None)
    assert history.progress("p") == [(days_ago(3), 9, 10), (days_ago(1), 5, None)]
    assert history.progress("p", since=days_ago(2)) == [(days_ago(1), 5, None)]


def test_eta_from_a_recorded_history_in_the_state_store(databases: Databases, tmp_path) -> None:  # type: ignore[no-untyped-def]
    old, new = "A" * 40, "B" * 40
    databases.ax.encrypted_fields(old, 400)
    databases.ax.encrypted_fields(new, 600)
    store = StateStore(tmp_path / "data")
    probe = Probe("fields", LAB_PROBE_SQL.format(old=old))
    key = probe.history_key("AXDB")
    # What earlier cycles recorded: 1,000 left six days ago, 100 fewer each day.
    for day in range(6, 0, -1):
        store.add_progress(key, days_ago(day), 1000.0 - 100 * (6 - day), 1000.0)
    collector = SqlCollector(databases.axdb, options=AxdbOptions(probes=(probe,)))
    collector.use_progress_history(store, clock=lambda: NOW)
    facts = collector.collect("AXDB", Deadline.after(20)).facts
    assert isinstance(facts, AxdbFacts)
    (read,) = facts.probes
    result = read.estimate
    assert result is not None
    assert (result.remaining, result.total, result.ratio) == (400, 1000, 0.6)
    assert result.rate_per_hour == pytest.approx(600 / (6 * 24))
    assert result.eta == NOW + timedelta(days=4)
    # The measurement itself joined the history.
    assert store.progress(key)[-1] == (NOW, 400.0, 1000.0)
    # An edited probe starts over: yesterday's pace of another query says nothing about this one.
    assert Probe("fields", probe.sql + " WHERE 1 = 1").history_key("AXDB") != key
    store.close()


def test_the_batch_job_moves_the_probe(databases: Databases) -> None:
    old, new = "A" * 40, "B" * 40
    databases.ax.encrypted_fields(old, 50)
    clock = [days_ago(3)]
    collector = SqlCollector(
        databases.axdb,
        clock=lambda: clock[0],
        options=AxdbOptions(probes=(Probe("fields", LAB_PROBE_SQL.format(old=old)),)),
    )
    remaining = []
    for _ in range(3):
        facts = collector.collect("AXDB", Deadline.after(20)).facts
        assert isinstance(facts, AxdbFacts)
        estimate_now = facts.probes[0].estimate
        assert estimate_now is not None
        remaining.append(estimate_now.remaining)
        databases.ax.reencrypt(old, new, 10)  # one nightly run
        clock[0] += timedelta(days=1)
    assert remaining == [50, 40, 30]
    assert estimate_now.rate_per_hour == pytest.approx(20 / 48)
    assert estimate_now.eta == days_ago(1) + timedelta(hours=30 / (20 / 48))
