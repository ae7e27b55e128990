"""APScheduler drives each source on its own interval; a stopped daemon stops collecting."""

from __future__ import annotations

import time

from daemon.app import Daemon
from daemon.settings import Settings


def test_sources_run_repeatedly_on_their_interval(lab_settings: Settings) -> None:
    sources = lab_settings.sources.model_copy(
        update={
            "clusterconfig": lab_settings.sources.clusterconfig.model_copy(
                update={"interval_seconds": 0.5, "jitter_seconds": 0}
            ),
            "certfolder": lab_settings.sources.certfolder.model_copy(update={"enabled": False}),
        }
    )
    daemon = Daemon(lab_settings.model_copy(update={"sources": sources}))
    daemon.start(serve=False)
    try:
        seen = set()
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline and len(seen) < 3:
            result = daemon.runner.snapshot().results.get(("clusterconfig", "ClusterConfig.json"))
            if result is not None and result.health.last_success_at is not None:
                seen.add(result.health.last_success_at)
            time.sleep(0.1)
        assert len(seen) >= 3, "the clusterconfig source should have run at least three times"
        assert daemon.scheduler is not None and daemon.scheduler.running
        assert ("certfolder", "AOS1") not in daemon.runner.snapshot().results
    finally:
        daemon.stop()
    assert daemon.scheduler is not None and not daemon.scheduler.running
