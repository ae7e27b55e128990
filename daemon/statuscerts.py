"""Which certificates the status document lists: all of them, up to a limit; beyond it, those that matter.

A store of 50,000 certificates made `/api/status` a 100 MiB document rebuilt after every
evaluation. Past `STATUS_CERTIFICATE_LIMIT` locations the document keeps the certificates an
operator acts on: those a configuration references, those a finding names, those within the
longest expiry warning window, and everything that is not in a node's certificate store
(endpoints, files); it says how many it left out. `certmon collect --once --format json`
still lists every one.
"""

from __future__ import annotations

from datetime import timedelta

from collectors.model import CertObservation
from daemon.evaluator import Evaluation
from daemon.inventory import NODE_STORE_SOURCES
from daemon.settings import DEFAULT_EXPIRY, Settings

STATUS_CERTIFICATE_LIMIT = 5_000


def status_certificates(evaluation: Evaluation, settings: Settings) -> tuple[list[CertObservation], int]:
    """The certificate locations the status document lists, and how many it leaves out."""
    every = list(evaluation.snapshot.certificates())
    if len(every) <= STATUS_CERTIFICATE_LIMIT:
        return every, 0
    named = {f.thumbprint for f in evaluation.findings if f.thumbprint}
    windows = [*DEFAULT_EXPIRY.values(), *settings.expiry.values()]
    horizon = evaluation.evaluated_at + timedelta(days=max(w.warning_days for w in windows))
    kept = [
        obs
        for obs in every
        if obs.source not in NODE_STORE_SOURCES
        or obs.thumbprint in evaluation.roles
        or obs.thumbprint in named
        or obs.certificate.not_after <= horizon
    ]
    if len(kept) > STATUS_CERTIFICATE_LIMIT:
        kept.sort(key=lambda o: (o.thumbprint not in evaluation.roles, o.certificate.not_after))
        kept = kept[:STATUS_CERTIFICATE_LIMIT]
    return kept, len(every) - len(kept)
