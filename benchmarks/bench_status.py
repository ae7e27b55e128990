"""Status page benchmark, measured side by side in one run, on the evaluator benchmark's snapshot.

The snapshot of `bench_evaluator.py` (200 AOS nodes, ~98 certificates each, the lab's file
sources) is evaluated once; then, on that one evaluation:

* building the status document and the HTML page (once per evaluation, the first time the
  page or `/api/status` is asked for) versus building the metric families (once per
  evaluation as well);
* serving the page from memory over real HTTP (`GET /` on the API listener) versus a
  `/metrics` scrape of the same daemon (the exporter's listener).

Run: .venv/bin/python benchmarks/bench_status.py
"""

from __future__ import annotations

import sys
import tempfile
import urllib.request
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_evaluator import NOW, _best, build

from daemon.app import Daemon, View
from daemon.evaluator import evaluate
from daemon.exposition import render_exposition
from daemon.metrics import build_families
from daemon.settings import Settings
from daemon.status import status_document
from daemon.statuspage import render_page


def _get(url: str) -> bytes:
    with urllib.request.urlopen(url, timeout=60) as response:
        return bytes(response.read())


def main() -> dict[str, float]:
    """Print the timings and their ratios; return them."""
    snapshot, history, loaded = build()
    settings = loaded if isinstance(loaded, Settings) else Settings()
    evaluation = evaluate(snapshot, history, NOW, settings)
    families_s = _best(lambda: build_families(evaluation, {}))
    families = tuple(build_families(evaluation, {}))
    view = View(evaluation, families, render_exposition(families))
    page_s = _best(lambda: render_page(status_document(view, settings)))
    document = status_document(view, settings)
    page = render_page(document)
    rows = len(document["matrix"]["nodes"])

    quiet = settings.model_copy(deep=True)
    quiet.data_dir = Path(tempfile.mkdtemp()) / "data"
    quiet.exporter.port = 0
    daemon = Daemon(quiet, collectors=[], clock=lambda: NOW)
    daemon.view = view  # the benchmark's evaluation stands in for a collection
    daemon.start(schedule=False)
    try:
        assert daemon.http is not None and daemon.api is not None
        metrics_url, page_url = daemon.http.url + "/metrics", daemon.api.url + "/"
        scraped = _get(metrics_url)
        _get(page_url)  # the first request builds the page; later ones are served from memory
        scrape_s = _best(lambda: _get(metrics_url), repeat=11)
        serve_s = _best(lambda: _get(page_url), repeat=11)
    finally:
        daemon.stop()

    print(f"evaluation: {rows} nodes in the matrix, {len(evaluation.findings)} findings")
    print(f"status document + page ({len(page) // 1024} KiB):   {page_s * 1000:8.1f} ms")
    print(f"metric families of the same evaluation:     {families_s * 1000:8.1f} ms")
    print(f"ratio page build / metric families:         {page_s / families_s:8.2f}")
    print(f"GET / from memory:                          {serve_s * 1000:8.1f} ms")
    print(f"GET /metrics ({len(scraped) // 1024} KiB):                 {scrape_s * 1000:8.1f} ms")
    print(f"ratio metrics scrape / page request:        {scrape_s / serve_s:8.0f}")
    return {"page": page_s / families_s, "scrape": scrape_s / serve_s}


if __name__ == "__main__":
    main()
