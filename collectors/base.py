"""The collector contract: a name, a timeout, targets, and one verb that returns an Observation."""

from __future__ import annotations

import time
from abc import ABC, abstractmethod
from collections.abc import Sequence
from pathlib import Path
from typing import ClassVar

from collectors.errors import CollectorError, Reason
from collectors.model import MetricSpec, Observation


class Deadline:
    """A point on the monotonic clock that a collection must finish by."""

    __slots__ = ("at",)

    def __init__(self, at: float) -> None:
        self.at = at

    @classmethod
    def after(cls, seconds: float) -> Deadline:
        """A deadline `seconds` from now."""
        return cls(time.monotonic() + seconds)

    def remaining(self) -> float:
        """Seconds left, never negative."""
        return max(0.0, self.at - time.monotonic())

    def expired(self) -> bool:
        """True once the deadline has passed."""
        return time.monotonic() >= self.at

    def check(self, source: str) -> None:
        """Raise a timeout error for `source` when the deadline has passed."""
        if self.expired():
            raise CollectorError(source, Reason.TIMEOUT, "deadline exceeded")


class Collector(ABC):
    """One source of certificates or references. Never raises anything but CollectorError."""

    #: source name, used as the `source` label
    name: ClassVar[str]
    #: metrics this source adds to the core contract
    metrics: ClassVar[tuple[MetricSpec, ...]] = ()

    def __init__(self, *, timeout: float = 60.0, interval: float = 300.0, concurrency: int = 1) -> None:
        self.timeout = timeout
        self.interval = interval
        self.concurrency = max(1, concurrency)

    def targets(self) -> Sequence[str]:
        """What this source collects separately (nodes, files); each has its own health."""
        return (self.name,)

    @abstractmethod
    def collect(self, target: str, deadline: Deadline) -> Observation:
        """Collect one target before the deadline, or raise CollectorError."""

    def close(self) -> None:  # noqa: B027 - optional hook, most collectors hold nothing
        """Release connections; called on shutdown."""


class FileCollector(Collector):
    """A source that reads one local file (ClusterConfig.json, localagent-config.json, Credentials.json).

    Its one target is the file's name; `collect` reads `self.path`.
    """

    def __init__(self, path: Path, *, timeout: float = 60.0, interval: float = 300.0) -> None:
        super().__init__(timeout=timeout, interval=interval)
        self.path = path

    def targets(self) -> Sequence[str]:
        """The file name."""
        return (self.path.name,)
