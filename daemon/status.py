"""The status document behind `GET /api/status` and the status page, built once per view.

It is `certmon status --format json` (`report.status_payload`) plus the certificates
(`report.collection_payload`) and the node × role matrix, with a summary for the page's
header. Requests only read the document of the latest view; it is rebuilt, from memory,
the first time it is asked for after a new evaluation.
"""

from __future__ import annotations

import threading
from collections import Counter
from typing import Any

from daemon.matrix import certificate_matrix
from daemon.payloads import collection_payload, status_payload
from daemon.settings import Settings
from daemon.statuscerts import status_certificates
from daemon.view import RunningDaemon, View


def status_document(view: View, settings: Settings) -> dict[str, Any]:
    """Everything the status page shows, as JSON-ready data."""
    listed, omitted = status_certificates(view.evaluation, settings)
    payload = collection_payload(view, listed)
    document = status_payload(view, payload)
    document["certificates"] = payload["certificates"]
    document["certificates_omitted"] = omitted
    document["matrix"] = certificate_matrix(view.evaluation, settings)
    document["summary"] = _summary(document)
    return document


def _summary(document: dict[str, Any]) -> dict[str, Any]:
    steps = Counter(s["status"] for s in document["checklist"])
    severities = Counter(f["severity"] for f in document["findings"])
    sources = document["sources"]
    return {
        "steps": {"total": len(document["checklist"]), **steps},
        "findings": {"total": len(document["findings"]), **severities},
        "sources": {
            "total": len(sources),
            "up": sum(1 for s in sources if s["up"]),
            "stale": sum(1 for s in sources if s["stale"]),
            "down": sum(1 for s in sources if not s["up"] and not s["stale"]),
        },
        "old_certificates": {
            "total": len(document["old_certificates"]),
            "safe_to_remove": sum(1 for c in document["old_certificates"] if c["safe_to_remove"]),
        },
    }


class StatusCache:
    """The latest view's status document and rendered page; rebuilt when the view changes."""

    def __init__(self, daemon: RunningDaemon) -> None:
        self._daemon = daemon
        self._lock = threading.Lock()
        self._view: View | None = None
        self._document: dict[str, Any] = {}
        self._page: str | None = None

    def _refresh(self) -> None:
        view = self._daemon.view
        if view is not self._view:
            self._document = status_document(view, self._daemon.settings)
            self._page = None
            self._view = view

    def document(self) -> dict[str, Any]:
        """The latest status document."""
        with self._lock:
            self._refresh()
            return self._document

    def page(self) -> str:
        """The latest status page."""
        from daemon.statuspage import render_page

        with self._lock:
            self._refresh()
            if self._page is None:
                self._page = render_page(self._document)
            return self._page
