"""Cardinality control: stores whose unreferenced certificates are exported as a count, not one by one.

A Root, AuthRoot or CA store holds hundreds to tens of thousands of certificates that no D365
configuration names; three series each make /metrics large and slow for nothing. For the
stores listed in `exporter.summarized_stores`, certificates a configuration references keep
their own series; the others become `certmon_store_certificates` and
`certmon_store_earliest_not_after_timestamp_seconds` per node and store.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping

from collectors.model import CertObservation

SUMMARY_LABELS = ("environment", "source", "node", "store")


class StoreSummary:
    """Counts and earliest expiry of the summarized certificates, per (source, node, store)."""

    def __init__(self, stores: Iterable[str]) -> None:
        self._stores = {s.lower() for s in stores}
        self.counts: dict[tuple[str, str, str], int] = {}
        self.earliest: dict[tuple[str, str, str], float] = {}

    def exported(
        self, observations: Iterable[CertObservation], roles: Mapping[str, tuple[str, ...]]
    ) -> Iterator[CertObservation]:
        """The observations that keep their own series; the others are counted here."""
        if not self._stores:
            yield from observations
            return
        lowered: dict[str, bool] = {}
        for obs in observations:
            summarized = lowered.get(obs.store)
            if summarized is None:
                summarized = lowered[obs.store] = obs.store.lower() in self._stores
            if not summarized or obs.certificate.thumbprint in roles:
                yield obs
                continue
            key = (obs.source, obs.node, obs.store)
            self.counts[key] = self.counts.get(key, 0) + 1
            expiry = obs.certificate.not_after_ts
            if expiry < self.earliest.get(key, float("inf")):
                self.earliest[key] = expiry
