"""The runner: collects every target of a source in a bounded pool, enforcing each deadline."""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

from collectors.base import Collector, Deadline
from collectors.errors import CollectorError, Reason
from collectors.model import Health, Observation, Snapshot, SourceResult
from collectors.secrets import redact
from daemon.workers import Workers

log = logging.getLogger("certmon.runner")

Clock = Callable[[], datetime]


def utc_now() -> datetime:
    """The wall clock, in UTC."""
    return datetime.now(UTC)


@dataclass(frozen=True, slots=True)
class Attempt:
    """The outcome of one collect() call."""

    observation: Observation | None
    reason: Reason | None
    message: str
    duration: float


def _attempt(collector: Collector, target: str, deadline: Deadline) -> Attempt:
    started = time.monotonic()
    try:
        observation = collector.collect(target, deadline)
        return Attempt(observation, None, "", time.monotonic() - started)
    except CollectorError as err:
        return Attempt(None, err.reason, redact(str(err)), time.monotonic() - started)
    except Exception as err:
        log.exception("collector %s crashed on %s", collector.name, target)
        text = redact(f"{target}: internal error: {type(err).__name__}: {err}")
        return Attempt(None, Reason.INTERNAL_ERROR, text, time.monotonic() - started)


class Runner:
    """Holds the latest result of every (source, target) and runs collection cycles."""

    def __init__(
        self,
        environment: str,
        collectors: Sequence[Collector],
        clock: Clock = utc_now,
        on_target_done: Callable[[Collector, SourceResult, Observation | None], None] | None = None,
    ) -> None:
        self.environment = environment
        self.collectors = {c.name: c for c in collectors}
        self.clock = clock
        self.on_target_done = on_target_done
        self._results: dict[tuple[str, str], SourceResult] = {}
        self._lock = threading.Lock()
        # Targets whose attempt has not returned yet: one that overran its deadline and is
        # still running must not be joined by a second one.
        self._busy: set[tuple[str, str]] = set()
        # Attempts run on threads kept between cycles (daemon/workers.py).
        self._workers = Workers()
        # One cycle of a source at a time: the scheduler and a remediation's re-collection may both
        # ask; the second waits and then reads afresh instead of seeing the first's targets as hung.
        self._cycles = {name: threading.Lock() for name in self.collectors}
        self._cycled: set[str] = set()

    def snapshot(self) -> Snapshot:
        """An immutable copy of the latest results."""
        with self._lock:
            return Snapshot(self.environment, self.clock(), dict(self._results))

    def every_source_reported(self) -> bool:
        """Whether every source has finished a cycle (with data or errors) since this runner started."""
        with self._lock:
            return self._cycled >= self.collectors.keys()

    def run_once(self) -> Snapshot:
        """Collect every source once, one after the other."""
        for name in self.collectors:
            self.run_source(name)
        return self.snapshot()

    def target_count(self) -> int:
        """How many targets a whole collection visits, for a progress line (a source that cannot list them: 1)."""
        total = 0
        for collector in self.collectors.values():
            try:
                total += len(set(collector.targets())) or 1
            except Exception:  # noqa: BLE001 - only an estimate; run_source records the real error
                total += 1
        return total

    def _targets(self, collector: Collector) -> Sequence[str]:
        try:
            return tuple(dict.fromkeys(collector.targets()))
        except CollectorError as err:
            self._record(collector, collector.name, Attempt(None, err.reason, redact(str(err)), 0.0))
            return ()
        except Exception as err:
            log.exception("collector %s could not list its targets", collector.name)
            text = redact(f"internal error listing targets: {type(err).__name__}: {err}")
            self._record(collector, collector.name, Attempt(None, Reason.INTERNAL_ERROR, text, 0.0))
            return ()

    def run_source(self, name: str) -> None:
        """Collect every target of one source, at most `concurrency` at a time."""
        with self._cycles[name]:
            self._run_source(name)
        with self._lock:
            self._cycled.add(name)

    def _run_source(self, name: str) -> None:
        collector = self.collectors[name]
        targets = self._targets(collector)
        self._forget_targets(collector, targets)
        pending = list(targets)
        running: dict[str, Deadline] = {}
        # Finished attempts of this cycle, in the order they end: one queue, not a wait on every running future.
        finished: queue.SimpleQueue[tuple[str, Attempt]] = queue.SimpleQueue()
        while pending or running:
            while pending and len(running) < collector.concurrency:
                target = pending.pop(0)
                with self._lock:
                    busy = (name, target) in self._busy
                if busy:
                    message = f"{target}: previous attempt is still running past its deadline"
                    self._record(collector, target, Attempt(None, Reason.TIMEOUT, message, 0.0))
                    continue
                deadline = Deadline.after(collector.timeout)
                self._start(collector, target, deadline, finished)
                running[target] = deadline
            if not running:
                break
            nearest = min(d.remaining() for d in running.values())
            timed_out = False
            try:
                target, attempt = finished.get(timeout=max(nearest, 0.0))
            except queue.Empty:
                timed_out = True
            else:
                # An attempt recorded as timed out may still end later: its late result is dropped.
                if running.pop(target, None) is not None:
                    self._record(collector, target, attempt)
            if timed_out or nearest <= 0:
                for target, deadline in list(running.items()):
                    if deadline.expired():
                        text = f"{target}: no answer within {collector.timeout:g} s"
                        self._record(collector, target, Attempt(None, Reason.TIMEOUT, text, collector.timeout))
                        del running[target]

    def _start(
        self, collector: Collector, target: str, deadline: Deadline, finished: queue.SimpleQueue[tuple[str, Attempt]]
    ) -> None:
        key = (collector.name, target)
        # Remembered until the attempt returns, so a hung target is not started twice.
        with self._lock:
            self._busy.add(key)

        outcome: list[Attempt] = []

        def work() -> None:
            try:
                outcome.append(_attempt(collector, target, deadline))
            except BaseException:
                with self._lock:
                    self._busy.discard(key)
                raise

        def finish() -> None:
            # Not busy first: the next cycle may start as soon as the result is in.
            with self._lock:
                self._busy.discard(key)
            if outcome:
                finished.put((target, outcome[0]))
            else:  # the job failed outside _attempt (it never does): its deadline reports it
                log.error("collector %s: no outcome for %s", collector.name, target)

        self._workers.submit(work, f"collect-{collector.name}-{target}", finish)

    def overrunning(self, name: str) -> list[str]:
        """Targets of a source whose attempt is still running (past its deadline, when no cycle is)."""
        with self._lock:
            return sorted(t for source, t in self._busy if source == name)

    def _forget_targets(self, collector: Collector, targets: Sequence[str]) -> None:
        """Drop results of targets that are no longer configured (a node removed from the template)."""
        keep = set(targets)
        with self._lock:
            for key in [k for k in self._results if k[0] == collector.name]:
                if key[1] not in keep and key[1] != collector.name:
                    del self._results[key]

    def _record(self, collector: Collector, target: str, attempt: Attempt) -> None:
        now = self.clock()
        key = (collector.name, target)
        with self._lock:
            previous = self._results.get(key)
        if attempt.reason is None:
            health = Health(True, None, "", attempt.duration, now, now)
            result = SourceResult(
                collector.name,
                target,
                health,
                attempt.observation,
                previous.errors_total if previous else {},
            )
            if previous is not None and not previous.health.ok:
                log.info("%s %s recovered", collector.name, target)
        else:
            errors = dict(previous.errors_total) if previous else {}
            errors[attempt.reason] = errors.get(attempt.reason, 0) + 1
            last_success = previous.health.last_success_at if previous else None
            health = Health(False, attempt.reason, attempt.message, attempt.duration, now, last_success)
            result = SourceResult(collector.name, target, health, previous.observation if previous else None, errors)
            if previous is None or previous.health.ok or previous.health.reason != attempt.reason:
                log.warning("%s %s failing (%s): %s", collector.name, target, attempt.reason, attempt.message)
        with self._lock:
            self._results[key] = result
        if self.on_target_done is not None:
            self.on_target_done(collector, result, attempt.observation)

    def release_threads(self, timeout: float = 0.0) -> bool:
        """Idle collection threads leave now, busy ones after their attempt; True when none is left within `timeout`."""
        self._workers.close()
        return self._workers.wait_gone(timeout)

    def close(self) -> None:
        """Close every collector's connections; idle collection threads leave."""
        self._workers.close()
        for collector in self.collectors.values():
            try:
                collector.close()
            except Exception:
                log.exception("closing collector %s failed", collector.name)
